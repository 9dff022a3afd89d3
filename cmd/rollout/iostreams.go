package main

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// IOStreams are the command's streams: data to Out, status to ErrOut.
// Tests pass buffers; main passes the process's streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY and ErrTTY say whether the streams are terminals (colour,
	// live view). NoColor is set from NO_COLOR.
	OutTTY bool
	ErrTTY bool
	// InTTY says whether In is a terminal: a canary waiting for a person
	// then also takes the answer there.
	InTTY   bool
	NoColor bool
	// Getenv reads the environment; tests replace it.
	Getenv func(string) string
}

func systemStreams() *IOStreams {
	return &IOStreams{
		In:      os.Stdin,
		Out:     os.Stdout,
		ErrOut:  os.Stderr,
		OutTTY:  isTerminal(os.Stdout),
		ErrTTY:  isTerminal(os.Stderr),
		InTTY:   isTerminal(os.Stdin),
		NoColor: os.Getenv("NO_COLOR") != "",
		Getenv:  os.Getenv,
	}
}

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// ColorErr says whether diagnostics on ErrOut may use colour.
func (s *IOStreams) ColorErr() bool { return s.ErrTTY && !s.NoColor }

// ColorOut says whether output on Out may use colour.
func (s *IOStreams) ColorOut() bool { return s.OutTTY && !s.NoColor }

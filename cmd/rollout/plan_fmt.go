package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/dsl"
)

// FmtOptions are the inputs of `rollout plan fmt`.
type FmtOptions struct {
	IO    *IOStreams
	Files []string
	Check bool
	Diff  bool
}

// NewCmdFmt builds `plan fmt`.
func NewCmdFmt(io *IOStreams, runF func(*FmtOptions) error) *cobra.Command {
	opts := &FmtOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "fmt [--check] [--diff] FILE...",
		Short: "Rewrite plan files in the canonical HCL style",
		Long: `Rewrite plan files in the canonical HCL style (hclwrite), in place.
With --check nothing is written: the files that need formatting are listed
and the exit status is 1. With --diff the changes are printed as a unified diff.
A file with syntax errors is left untouched and reported.`,
		Example: `  rollout plan fmt plans/*.hcl plans/inventory/*.hcl
  rollout plan fmt --check --diff plans/*.hcl   # in CI`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if runF != nil {
				return runF(opts)
			}
			return fmtRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Check, "check", false, "write nothing; exit 1 when a file is not formatted")
	cmd.Flags().BoolVar(&opts.Diff, "diff", false, "print the changes as a unified diff")
	return cmd
}

func fmtRun(opts *FmtOptions) error {
	unformatted, broken := 0, 0
	for _, file := range opts.Files {
		src, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "rollout: %s\n", err)
			broken++
			continue
		}
		// A file too large, binary or nested too deeply for the parser is
		// refused before hclwrite parses it.
		if d := dsl.CheckFileText(file, src); d != nil {
			files := map[string][]byte{file: src}
			if err := writeDiagsText(opts.IO.ErrOut, files, hcl.Diagnostics{d}, opts.IO.ColorErr()); err != nil {
				return err
			}
			broken++
			continue
		}
		// hclwrite formats token streams even when the syntax is broken;
		// refuse those files rather than rewrite what we cannot parse.
		if _, diags := hclwrite.ParseConfig(src, file, hcl.InitialPos); diags.HasErrors() {
			files := map[string][]byte{file: src}
			if err := writeDiagsText(opts.IO.ErrOut, files, diags, opts.IO.ColorErr()); err != nil {
				return err
			}
			broken++
			continue
		}
		out := hclwrite.Format(src)
		if bytes.Equal(src, out) {
			continue
		}
		unformatted++
		if opts.Diff {
			fmt.Fprint(opts.IO.Out, unifiedDiff(file, string(src), string(out)))
		} else if opts.Check {
			fmt.Fprintln(opts.IO.Out, file)
		}
		if opts.Check {
			continue
		}
		if err := writeFileKeepMode(file, out); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "rollout: %s\n", err)
			broken++
			continue
		}
		if !opts.Diff {
			fmt.Fprintln(opts.IO.Out, file)
		}
	}
	switch {
	case broken > 0:
		return silentExit(exitUsage)
	case opts.Check && unformatted > 0:
		return silentExit(exitFailed)
	}
	return nil
}

// writeFileKeepMode replaces path atomically, keeping its mode.
func writeFileKeepMode(path string, data []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".fmt-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// unifiedDiff renders a line diff of a and b with three lines of context.
// Plan files are small, so the quadratic LCS is fine.
func unifiedDiff(name, a, b string) string {
	al, bl := splitLines(a), splitLines(b)
	n, m := len(al), len(bl)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		text string
		ai   int // line index in a (for ' ' and '-')
		bi   int // line index in b (for ' ' and '+')
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && al[i] == bl[j]:
			ops = append(ops, op{' ', al[i], i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', al[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', bl[j], i, j})
			j++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s (formatted)\n", name, name)
	const context = 3
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := max(k-context, 0)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*context || run == len(ops) {
				end = min(end+context, len(ops))
				break
			}
			end = run
		}
		aStart, bStart, aLen, bLen := ops[start].ai+1, ops[start].bi+1, 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aLen++
			}
			if o.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", aStart, aLen, bStart, bLen)
		for _, o := range ops[start:end] {
			sb.WriteByte(o.kind)
			sb.WriteString(o.text)
			sb.WriteByte('\n')
		}
		k = end
	}
	return sb.String()
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

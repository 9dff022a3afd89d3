package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestDemoFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     DemoOptions
		wantCode int
	}{
		{"defaults", nil, DemoOptions{Parallel: 4}, exitOK},
		{"break keep", []string{"--break", "sso.api", "--keep"}, DemoOptions{Break: "sso.api", Keep: true, Parallel: 4}, exitOK},
		{"parallel", []string{"--parallel", "1", "--json", "--no-tty"}, DemoOptions{Parallel: 1, ParallelSet: true, JSON: true, NoTTY: true}, exitOK},
		{"negative parallel", []string{"--parallel", "-1"}, DemoOptions{}, exitUsage},
		{"no args", []string{"extra"}, DemoOptions{}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _ := testStreams()
			var got *DemoOptions
			cmd := NewCmdDemo(ios, func(o *DemoOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.Execute()
			if code := exitCode(err); code != tt.wantCode {
				t.Fatalf("exit code %d (%v), want %d", code, err, tt.wantCode)
			}
			if tt.wantCode != exitOK {
				return
			}
			got.IO = nil
			if *got != tt.want {
				t.Errorf("options = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// TestDemoUnknownBreak: a --break that names no demo service is bad usage,
// reported before anything is started, and leaves no file behind.
func TestDemoUnknownBreak(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ios, out, errOut := testStreams()
	err := demoRun(&DemoOptions{IO: ios, Break: "sso.apii", Events: tmp + "/events.jsonl"})
	if code := exitCode(err); code != exitUsage {
		t.Fatalf("exit %d (%v), want %d", code, err, exitUsage)
	}
	if !strings.Contains(err.Error(), "choose one of: sso.postgresql,") {
		t.Errorf("error %q does not list the services", err)
	}
	if out.Len() > 0 || errOut.Len() > 0 {
		t.Errorf("output before the usage error: %q %q", out, errOut)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("left %d entries in TMPDIR", len(entries))
	}
}

// TestEveryCommandHasExamples: --help of every command shows examples.
func TestEveryCommandHasExamples(t *testing.T) {
	ios, _, _ := testStreams()
	root := NewCmdRoot(ios)
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		seen++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("`%s --help` has no examples", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, name := range []string{"demo", "completion", "plan"} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("no %s command: %v", name, err)
		}
	}
	if seen < 12 {
		t.Errorf("walked %d commands, want at least 12 (plan's 3, run, events, demo, completion's 4 ...)", seen)
	}
}

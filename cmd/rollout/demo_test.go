package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/plans"
)

// TestDemoPlan checks the plan `rollout demo` runs: it is the file in
// plans/ (embedded), it validates, and it holds the reference's examples.
func TestDemoPlan(t *testing.T) {
	onDisk, err := os.ReadFile("../../plans/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, plans.Demo) {
		t.Fatal("plans.Demo differs from plans/demo.hcl")
	}
	f := planFlags{
		Vars:       []string{"dir=/srv/demo", "port_base=50000"},
		Deploy:     true,
		DeployPath: "/srv/demo/release",
	}
	c := compileFile("../../plans/demo.hcl", map[string]string{"dir": "/srv/demo", "port_base": "50000"}, f.compileOptions())
	if c.Plan == nil || c.Diags.HasErrors() || len(c.Diags) > 0 {
		t.Fatalf("demo plan does not compile cleanly: %s", c.Diags.Error())
	}
	plan := c.Plan
	if len(plan.Services) != 12 {
		t.Errorf("%d services, want 12", len(plan.Services))
	}
	if plan.OnFailure != "continue" {
		t.Errorf("on_failure = %q, want continue (a broken API still lets the ML chain finish)", plan.OnFailure)
	}

	byName := map[string]int{}
	ports := map[int]string{}
	for i, name := range plan.Order {
		byName[name] = i
	}
	for _, s := range plan.Services {
		if !strings.HasPrefix(s.Unit, demoUnitPrefix) {
			t.Errorf("%s: unit %s does not start with %s (cleanup removes only those)", s.Name, s.Unit, demoUnitPrefix)
		}
		if want := "/srv/demo/srv/" + s.Name; s.WorkingDir != want {
			t.Errorf("%s: working_dir %s, want %s", s.Name, s.WorkingDir, want)
		}
		port, err := healthPort(s.Health)
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		if port <= 50000 || port > 50012 {
			t.Errorf("%s: port %d outside port_base+1..port_base+12", s.Name, port)
		}
		if other, dup := ports[port]; dup {
			t.Errorf("%s and %s share port %d", s.Name, other, port)
		}
		ports[port] = s.Name
		deploy := false
		for _, st := range s.Steps {
			if st.Type == "rsync" {
				deploy = true
			}
		}
		if !deploy {
			t.Errorf("%s: no rsync step under --deploy: it would not move to v2", s.Name)
		}
	}

	// The reference's examples, as restart orders.
	chains := [][]string{
		{"sso.postgresql", "sso.api"},
		{"sso.redis", "sso.api"},
		{"sso.api", "merchant.api", "marketplace.api"},
		{"seo.redis", "seo.rag-retrieval", "seo.classifier"},
	}
	for _, chain := range chains {
		for i := 1; i < len(chain); i++ {
			a, aok := byName[chain[i-1]]
			b, bok := byName[chain[i]]
			if !aok || !bok || a >= b {
				t.Errorf("order %v does not restart %s before %s", plan.Order, chain[i-1], chain[i])
			}
		}
	}
	for _, s := range plan.Services {
		if s.Name == "marketplace.api" && !(slices.Contains(s.DependsOn, "sso.api") && slices.Contains(s.DependsOn, "merchant.api")) {
			t.Errorf("marketplace.api depends_on %v, want sso.api and merchant.api (reference example 2)", s.DependsOn)
		}
	}
}

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

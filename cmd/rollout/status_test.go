package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/internal/systemdapi"
	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/steps"
)

// statusFixture is a fake manager holding testdata/status's units: st.db
// running, st.api running its release 20261130T225900Z-cccccc, st.worker
// stopped, st.cache not loaded; and a release directory for st.api.
func statusFixture(t *testing.T) (*systemdfake.Systemd, string, time.Time) {
	now := time.Date(2026, 11, 30, 23, 5, 10, 0, time.UTC)
	sd := systemdfake.New()
	sd.SetUnit("st-db.service", systemdapi.UnitState{ActiveState: "active", SubState: "running", MainPID: 4242, StateChangeTime: now.Add(-5*time.Minute - 10*time.Second)})
	sd.SetUnit("st-api.service", systemdapi.UnitState{ActiveState: "active", SubState: "running", MainPID: 4301, StateChangeTime: now.Add(-26 * time.Hour)})
	sd.SetUnit("st-worker.service", systemdapi.UnitState{ActiveState: "inactive", SubState: "dead", StateChangeTime: now.Add(-42 * time.Second)})
	dir := t.TempDir()
	rel := filepath.Join(dir, "api", "releases", "20261130T225900Z-cccccc")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("releases/20261130T225900Z-cccccc", filepath.Join(dir, "api", "current")); err != nil {
		t.Fatal(err)
	}
	return sd, dir, now
}

func TestStatusGolden(t *testing.T) {
	for _, tt := range []struct {
		name   string
		json   bool
		golden string
	}{
		{"table", false, "status/want.txt"},
		{"json", true, "status/want.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sd, dir, now := statusFixture(t)
			ios, out, errOut := testStreams()
			opts := &StatusOptions{
				IO: ios, File: "testdata/status/main.hcl", JSON: tt.json,
				Flags:   planFlags{Vars: []string{"dir=" + dir}},
				Events:  "testdata/status/events.jsonl",
				Timeout: 30 * time.Second,
				Systemd: func(context.Context, bool) (steps.Backend, error) { return sd, nil },
				Now:     func() time.Time { return now },
			}
			err := statusRun(opts)
			if code := exitCode(err); code != exitFailed {
				t.Fatalf("exit %d (%v), want 1: st.worker and st.cache are unhealthy\n%s", code, err, errOut)
			}
			golden(t, tt.golden, []byte(strings.ReplaceAll(out.String(), dir, "DIR")))
		})
	}
}

func TestStatusAllHealthyExits0(t *testing.T) {
	sd, dir, now := statusFixture(t)
	ios, out, errOut := testStreams()
	err := statusRun(&StatusOptions{
		IO: ios, File: "testdata/status/main.hcl",
		Flags:   planFlags{Vars: []string{"dir=" + dir}, Services: []string{"st.db", "st.api"}},
		Events:  "testdata/status/events.jsonl",
		Timeout: 30 * time.Second,
		Systemd: func(context.Context, bool) (steps.Backend, error) { return sd, nil },
		Now:     func() time.Time { return now },
	})
	if code := exitCode(err); code != exitOK {
		t.Fatalf("exit %d (%v), want 0\n%s%s", code, err, out, errOut)
	}
	if !strings.Contains(out.String(), "2 of 2 services healthy.") || strings.Contains(out.String(), "st.worker") {
		t.Errorf("output:\n%s", out)
	}
}

func TestStatusFlags(t *testing.T) {
	var got *StatusOptions
	ios, _, _ := testStreams()
	cmd := NewCmdStatus(ios, func(o *StatusOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"plan.hcl", "--service", "a", "--service", "b", "--json", "--user", "--timeout", "3s", "--events", "e.jsonl"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.File != "plan.hcl" || strings.Join(got.Flags.Services, ",") != "a,b" || !got.JSON || !got.User || got.Timeout != 3*time.Second || got.Events != "e.jsonl" {
		t.Errorf("options %+v", got)
	}
	cmd = NewCmdStatus(ios, func(*StatusOptions) error { return nil })
	cmd.SetArgs([]string{"plan.hcl", "--timeout", "0s"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	if err := cmd.Execute(); exitCode(err) != exitUsage {
		t.Errorf("--timeout 0s: %v, want a usage error", err)
	}
}

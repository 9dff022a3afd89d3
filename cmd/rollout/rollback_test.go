package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/steps"
)

// TestRollbackPlanning: which services a rollback takes, where they go,
// and what it refuses, without a manager (--dry-run).
func TestRollbackPlanning(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "apps", "api")
	for _, id := range []string{"20260101T000001Z-a", "20260101T000002Z-b"} {
		writeFile(t, filepath.Join(base, "releases", id, "VERSION"), id)
	}
	if err := os.Symlink("releases/20260101T000002Z-b", filepath.Join(base, "current")); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(dir, "plan.hcl")
	writeFile(t, plan, fmt.Sprintf(`
pipeline "release" {
  step "release" "deploy" {
    if   = run.deploy
    from = run.deploy_path
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
pipeline "default" {
  step "restart" "restart" {}
}
service "api" {
  unit        = "api.service"
  pipeline    = "release"
  working_dir = %q
}
service "db" {
  unit = "db.service"
}
`, filepath.Join(base, "current")))
	noManager := func(context.Context, bool) (steps.Backend, error) { return nil, errors.New("no manager in this test") }
	tests := []struct {
		name     string
		services []string
		to       string
		code     int
		out      []string // in stdout, or stderr when code != 0
	}{
		{"whole plan takes the services with releases", nil, "", exitOK, []string{
			"api: " + base + "/current: 20260101T000002Z-b -> 20260101T000001Z-a", "switch (switch_release)", "restart (restart)", "verify (health_check)", "1 service"}},
		{"--to a prefix", []string{"api"}, "20260101T000001", exitOK, []string{"-> 20260101T000001Z-a"}},
		{"a selected service without releases", []string{"api", "db"}, "", exitUsage, []string{"db has no release step in its pipeline"}},
		{"--to unknown", nil, "2027", exitUsage, []string{`api: no release "2027"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, out, errOut := testStreams()
			opts := &RollbackOptions{IO: ios, File: plan, To: tt.to, Systemd: noManager}
			opts.Flags.Services = tt.services
			opts.Flags.DryRun = true
			err := rollbackRun(opts)
			if code := exitCode(err); code != tt.code {
				t.Fatalf("exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", code, err, tt.code, out, errOut)
			}
			text := out.String()
			if tt.code != exitOK {
				text = err.Error()
			}
			for _, want := range tt.out {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "db.service") {
				t.Errorf("db (no releases) is in the rollback:\n%s", text)
			}
		})
	}
	// Nothing changed.
	if l, _ := os.Readlink(filepath.Join(base, "current")); l != "releases/20260101T000002Z-b" {
		t.Errorf("current -> %s after dry runs", l)
	}
}

// TestReleasesOutput: the text and JSON listings of one service's
// releases, exactly.
func TestReleasesOutput(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "apps", "api")
	for _, id := range []string{"20260101T000001Z-a", "20260101T000002Z-b", "20260101T000003Z-c"} {
		writeFile(t, filepath.Join(base, "releases", id, "VERSION"), id)
	}
	writeFile(t, filepath.Join(base, "releases", "20260101T000003Z-c.bad"), "rolled back\n")
	if err := os.Symlink("releases/20260101T000002Z-b", filepath.Join(base, "current")); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(dir, "plan.hcl")
	writeFile(t, plan, fmt.Sprintf(`
pipeline "default" {
  step "release" "deploy" {
    if   = run.deploy
    from = run.deploy_path
  }
  step "restart" "restart" {}
}
service "api" {
  unit        = "api.service"
  working_dir = %q
}
`, filepath.Join(base, "current")))

	ios, out, _ := testStreams()
	if err := releasesRun(&ReleasesOptions{IO: ios, File: plan}); err != nil {
		t.Fatal(err)
	}
	want := "api  " + base + "\n" +
		"  20260101T000001Z-a\n" +
		"  20260101T000002Z-b  current\n" +
		"  20260101T000003Z-c  bad: rolled back\n"
	if out.String() != want {
		t.Errorf("releases:\n%s\nwant:\n%s", out, want)
	}

	ios, out, _ = testStreams()
	if err := releasesRun(&ReleasesOptions{IO: ios, File: plan, JSON: true}); err != nil {
		t.Fatal(err)
	}
	wantJSON := `{
  "services": [
    {
      "service": "api",
      "base": "` + base + `",
      "current": "20260101T000002Z-b",
      "releases": [
        {
          "id": "20260101T000001Z-a",
          "current": false
        },
        {
          "id": "20260101T000002Z-b",
          "current": true
        },
        {
          "id": "20260101T000003Z-c",
          "current": false,
          "bad": "rolled back"
        }
      ]
    }
  ]
}
`
	if out.String() != wantJSON {
		t.Errorf("releases --json:\n%s\nwant:\n%s", out, wantJSON)
	}
}

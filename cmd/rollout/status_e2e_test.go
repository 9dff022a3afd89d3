package main

// `rollout status` with the real binary against a real systemd --user
// manager: one healthy service that deploys with releases, one stopped.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/internal/status"
	"github.com/rollout-sh/rollout/internal/systemdtest"
)

func TestStatusE2E(t *testing.T) {
	p := newPlatform(t)
	web := p.addService("stat.web", "v1", systemdtest.UnitOptions{})
	jobs := p.addService("stat.jobs", "v1", systemdtest.UnitOptions{})
	p.startAll()

	// stat.web runs from BASE/current, a release as the release step
	// leaves it.
	base := filepath.Join(p.dir, "web")
	if err := os.MkdirAll(filepath.Join(base, "releases", "20261130T230000Z-0a0b0c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("releases/20261130T230000Z-0a0b0c", filepath.Join(base, "current")); err != nil {
		t.Fatal(err)
	}
	plan := p.writePlan("plan.hcl", `
pipeline "default" {
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
`+strings.Replace(web.serviceHCL(""), fmt.Sprintf("working_dir = %q", web.Dir), fmt.Sprintf("working_dir = %q", filepath.Join(base, "current")), 1)+
		jobs.serviceHCL(`depends_on = ["stat.web"]`))

	if r := p.rollout("run", plan, "--user", "--events", p.events, "--service", "stat.web"); r.Code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	ch := make(chan string, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.conn().StopUnitContext(ctx, jobs.Unit, "replace", ch); err != nil {
		t.Fatal(err)
	}
	if res := <-ch; res != "done" {
		t.Fatalf("stop: %s", res)
	}
	webPID := p.state(web).MainPID

	r := p.rollout("status", plan, "--user", "--events", p.events)
	if r.Code != exitFailed {
		t.Fatalf("exit %d, want 1 (stat.jobs is stopped)\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	lines := strings.Split(r.Stdout, "\n")
	if len(lines) < 3 {
		t.Fatalf("output:\n%s", r.Stdout)
	}
	webRow, jobsRow := strings.Fields(lines[1]), strings.Fields(lines[2])
	// SERVICE UNIT STATE SINCE(2 fields) PID RELEASE HEALTH LAST RUN...
	if webRow[0] != "stat.web" || webRow[2] != "active/running" || webRow[5] != fmt.Sprint(webPID) ||
		webRow[6] != "20261130T230000Z-0a0b0c" || webRow[7] != "ok" || webRow[9] != "restarted" {
		t.Errorf("stat.web row %q (pid %d)", lines[1], webPID)
	}
	// A stopped unit may have been unloaded and loaded again by the
	// query, so its SINCE may be unknown ("-"): read the row from the end.
	n := len(jobsRow)
	if jobsRow[0] != "stat.jobs" || jobsRow[2] != "inactive/dead" || jobsRow[n-4] != "-" || jobsRow[n-3] != "-" || jobsRow[n-2] != "FAILING" || jobsRow[n-1] != "-" {
		t.Errorf("stat.jobs row %q", lines[2])
	}
	if !strings.Contains(r.Stdout, "stat.jobs: health (http http://127.0.0.1:") || !strings.Contains(r.Stdout, "1 of 2 services healthy.") {
		t.Errorf("output:\n%s", r.Stdout)
	}

	r = p.rollout("status", plan, "--user", "--events", p.events, "--json")
	var rep status.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code != exitFailed {
		t.Fatalf("--json: exit %d, %v\n%s", r.Code, err, r.Stdout)
	}
	if rep.Healthy || len(rep.Services) != 2 || !rep.Services[0].Healthy || rep.Services[1].Healthy ||
		rep.Services[0].Since.IsZero() || rep.Services[0].LastRun == nil || rep.Services[1].ActiveState != "inactive" {
		t.Errorf("--json report %+v", rep)
	}

	r = p.rollout("status", plan, "--user", "--events", p.events, "--service", "stat.web")
	if r.Code != 0 || !strings.Contains(r.Stdout, "1 of 1 services healthy.") {
		t.Errorf("--service stat.web: exit %d, want 0\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

package main

// Preflight against a real systemd --user manager: every problem a run
// would meet half-way is found before anything changes (issue 12 item 3,
// issue 13 items 3, 7 and 9).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/internal/systemdtest"
)

// preflightPipeline deploys, runs a program and restarts.
const preflightPipeline = `
pipeline "api" {
  step "backup_unit" "backup" {}
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    to   = service.working_dir
  }
  step "exec" "migrate" {
    command = [lookup(service.meta, "migrate", "true")]
    dir     = service.working_dir
  }
  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {}
}
`

// unchanged fails the test unless every service still runs the same
// process on v1 with its code and unit file as they were, no backup or
// snapshot was written and the events log holds nothing.
func (p *platform) unchanged(t *testing.T, before map[string]unitState, units map[string]string) {
	t.Helper()
	for _, s := range p.services {
		if st := p.state(s); st.InvocationID != before[s.Name].InvocationID || st.ActiveState != "active" {
			t.Errorf("%s was touched: %+v, before %+v", s.Name, st, before[s.Name])
		}
		if v := strings.TrimSpace(readFile(t, filepath.Join(s.Dir, "VERSION"))); v != "v1" {
			t.Errorf("%s's code is %q, want v1", s.Name, v)
		}
		if got := readFile(t, s.UnitPath); got != units[s.Name] {
			t.Errorf("%s's unit file changed", s.Name)
		}
		if _, err := os.Stat(s.UnitPath + ".backup"); err == nil {
			t.Errorf("%s's unit file was backed up", s.Name)
		}
		if snaps, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Dir), ".*snapshot*")); len(snaps) > 0 {
			t.Errorf("snapshots left: %v", snaps)
		}
	}
	if evs := p.readEvents(); len(evs) > 0 {
		t.Errorf("a refused run wrote %d events, first %s", len(evs), evs[0].Event)
	}
}

func (p *platform) snapshot() (map[string]unitState, map[string]string) {
	states, units := map[string]unitState{}, map[string]string{}
	for _, s := range p.services {
		states[s.Name] = p.state(s)
		units[s.Name] = readFile(p.t, s.UnitPath)
	}
	return states, units
}

// TestPreflightRefusesBeforeAnythingChanges breaks four services four ways
// at once and checks one message lists every problem, exit 2, nothing
// touched, for a run and a dry run.
func TestPreflightRefusesBeforeAnythingChanges(t *testing.T) {
	p := newPlatform(t)
	empty := p.addService("empty.release", "v1", systemdtest.UnitOptions{})
	noprog := p.addService("no.program", "v1", systemdtest.UnitOptions{})
	noprog.Meta = map[string]string{"migrate": "rollout-no-such-program"}
	edited := p.addService("edited.unit", "v1", systemdtest.UnitOptions{})
	fine := p.addService("fine", "v1", systemdtest.UnitOptions{})
	p.startAll()
	for _, s := range []*testService{noprog, edited, fine} {
		p.release(s, "v2", nil)
	}
	// empty.release's release directory exists and is empty: a failed build.
	// edited.unit's unit file is edited on disk after systemd loaded it.
	edit := edited.Opts
	edit.Args = []string{"-ready-delay", "5s"}
	writeFile(t, edited.UnitPath, systemdtest.HTTPServiceUnit(edited.Name, p.bin, edited.Port, edited.Dir, edit))

	plan := p.writePlan("plan.hcl", preflightPipeline+
		`defaults { min_free_space = "1000TiB" }`+"\n"+
		empty.serviceHCL(`type = "api"`)+noprog.serviceHCL(`type = "api"`)+
		edited.serviceHCL(`type = "api"`)+fine.serviceHCL(`type = "api"`)+
		`pipeline "unit_only" {
  step "restart" "restart" {}
}
service "not.loaded" {
  unit = "rt-not-installed.service"
  type = "unit_only"
  health "systemd" {}
}
`)
	before, units := p.snapshot()

	for _, mode := range []string{"run", "dry run"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", p.dir + "/release"}
			if mode == "dry run" {
				args = append(args, "--dry-run")
			}
			r := p.rollout(args...)
			if r.Code != exitUsage {
				t.Fatalf("exit %d, want 2\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			for _, want := range []string{
				"rollout: preflight found 5 problems; nothing was changed:",
				fmt.Sprintf("source directory %s/release/empty.release is empty: copying it would empty %s", p.dir, empty.Dir),
				"rollout-no-such-program: not found on PATH on this machine (the command); needed by no.program (step \"migrate\")",
				fmt.Sprintf("unit %s: %s (or a drop-in) changed on disk since systemd loaded it", edited.Unit, edited.UnitPath),
				"unit rt-not-installed.service is not loaded on this machine (LoadState=not-found)",
				"below min_free_space 1000TiB",
			} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
				}
			}
			if strings.Count(r.Stderr, "\n  - ") != 5 {
				t.Errorf("want 5 problems, one a line:\n%s", r.Stderr)
			}
			p.unchanged(t, before, units)
		})
	}
}

// TestEmptyDeployPathIsRefusedEvenWithForce is the hostile test's item 3:
// an empty --deploy-path, a tcp health check that does not read the files,
// and --force. The code must stay.
func TestEmptyDeployPathIsRefusedEvenWithForce(t *testing.T) {
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	emptyRelease := filepath.Join(p.dir, "empty-build")
	if err := os.MkdirAll(emptyRelease, 0o755); err != nil {
		t.Fatal(err)
	}
	plan := p.writePlan("plan.hcl", fmt.Sprintf(`
pipeline "api" {
  step "rsync" "deploy" {
    if   = run.deploy
    from = run.deploy_path
    to   = service.working_dir
  }
  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {}
}
service "sso.api" {
  unit        = %q
  type        = "api"
  working_dir = %q
  health "tcp" { address = "127.0.0.1:%d" }
}
`, api.Unit, api.Dir, api.Port))
	before, units := p.snapshot()

	for _, extra := range [][]string{{"--force"}, {"--force", "--dry-run"}} {
		t.Run(strings.Join(extra, " "), func(t *testing.T) {
			args := append([]string{"run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", emptyRelease}, extra...)
			r := p.rollout(args...)
			if r.Code != exitUsage {
				t.Fatalf("exit %d, want 2\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			if want := fmt.Sprintf("source directory %s is empty: copying it would empty %s", emptyRelease, api.Dir); !strings.Contains(r.Stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
			}
			p.unchanged(t, before, units)
		})
	}
}

// TestEditedUnitFileNeedsForce is item 7: a unit file edited on disk
// before the run would be backed up as edited and restored by a rollback.
// The run refuses; with --force it warns and goes on.
func TestEditedUnitFileNeedsForce(t *testing.T) {
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	writeFile(t, api.UnitPath, readFile(t, api.UnitPath)+"\n# edited after the last daemon-reload\n")
	plan := p.writePlan("plan.hcl", preflightPipeline+api.serviceHCL(`type = "api"`))
	before, units := p.snapshot()

	r := p.rollout("run", plan, "--user", "--events", p.events)
	if r.Code != exitUsage || !strings.Contains(r.Stderr, "changed on disk since systemd loaded it") || !strings.Contains(r.Stderr, "systemctl --user daemon-reload") {
		t.Fatalf("exit %d, want 2 naming the edited unit file\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	p.unchanged(t, before, units)

	r = p.rollout("run", plan, "--user", "--events", p.events, "--force")
	if r.Code != 0 {
		t.Fatalf("forced: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "rollout: warning: unit "+api.Unit) || !strings.Contains(r.Stderr, "going on because of `--force`") {
		t.Errorf("forced run does not warn:\n%s", r.Stderr)
	}
}

// TestEventsLogThatCannotBeWritten is item 9: `--events /dev/full` refuses
// to start (exit 2, nothing restarted).
func TestEventsLogThatCannotBeWritten(t *testing.T) {
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	plan := p.writePlan("plan.hcl", preflightPipeline+api.serviceHCL(`type = "api"`))
	before, units := p.snapshot()

	r := p.rollout("run", plan, "--user", "--events", "/dev/full")
	if r.Code != exitUsage {
		t.Fatalf("exit %d, want 2\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if want := "cannot write RUN_START to the events log, so the run did not start and nothing was changed"; !strings.Contains(r.Stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
	}
	p.unchanged(t, before, units)
}

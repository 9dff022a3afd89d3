package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// fakeMachine answers preflight from maps.
type fakeMachine struct {
	programs map[string]bool // name -> runnable
	dirs     map[string]DirInfo
	free     int64
	units    map[string]UnitInfo
	unitsErr error
}

func (m *fakeMachine) Where() string { return "this machine" }

func (m *fakeMachine) LookPath(p planner.Program) error {
	name := p.Name
	if strings.Contains(name, "/") && !filepath.IsAbs(name) {
		name = filepath.Join(p.Dir, name)
	}
	if m.programs[name] {
		return nil
	}
	if strings.Contains(p.Name, "/") {
		return errors.New("no such file")
	}
	return errors.New("not found on PATH")
}

func (m *fakeMachine) Dir(path string) (DirInfo, error) { return m.dirs[path], nil }

func (m *fakeMachine) FreeSpace(path string) (int64, string, error) { return m.free, "fs1", nil }

func (m *fakeMachine) Unit(ctx context.Context, name string) (UnitInfo, error) {
	if m.unitsErr != nil {
		return UnitInfo{}, m.unitsErr
	}
	if u, ok := m.units[name]; ok {
		return u, nil
	}
	return UnitInfo{LoadState: "not-found"}, nil
}

func healthyMachine() *fakeMachine {
	return &fakeMachine{
		programs: map[string]bool{"rsync": true, "npx": true, "/srv/a/bin/migrate": true},
		dirs: map[string]DirInfo{
			"/release/a": {Exists: true, IsDir: true},
			"/release/b": {Exists: true, IsDir: true},
			"/srv/a":     {Exists: true, IsDir: true},
			"/srv/b":     {Exists: true, IsDir: true},
		},
		free: 10 << 30,
		units: map[string]UnitInfo{
			"a.service": {LoadState: "loaded"},
			"b.service": {LoadState: "loaded"},
		},
	}
}

// deployPlan is two services, each deploying /release/X into /srv/X with
// rsync, migrating with exec, and restarting its unit.
func deployPlan() *planner.Plan {
	p := makePlan(specs("a", "b")...)
	p.MinFreeSpace = 1 << 30
	for _, svc := range p.Services {
		svc.WorkingDir = "/srv/" + svc.Name
		svc.Steps = []*planner.Step{
			{Name: "deploy", Type: "rsync", Needs: planner.Needs{
				Programs: []planner.Program{{Name: "rsync", Use: "rsync"}},
				Copies:   []planner.Copy{{From: "/release/" + svc.Name, To: svc.WorkingDir}},
			}},
			{Name: "migrate", Type: "exec", Needs: planner.Needs{
				Programs: []planner.Program{{Name: "npx", Dir: svc.WorkingDir, Use: "command"}},
				Dirs:     []string{svc.WorkingDir},
			}},
			{Name: "restart", Type: "restart", Needs: planner.Needs{Units: []string{svc.Unit}}},
		}
	}
	return p
}

func preflightOf(m Machine, force bool) PreflightOptions {
	return PreflightOptions{Machine: func(*planner.Service) Machine { return m }, Force: force}
}

func TestPreflightPassesAHealthyMachine(t *testing.T) {
	if err := Preflight(context.Background(), deployPlan(), preflightOf(healthyMachine(), false)); err != nil {
		t.Fatal(err)
	}
}

// TestPreflightListsEveryProblemOnce breaks everything at once: one error
// lists each problem once, naming the services it stops.
func TestPreflightListsEveryProblemOnce(t *testing.T) {
	m := healthyMachine()
	delete(m.programs, "rsync")
	m.dirs["/release/a"] = DirInfo{Exists: true, IsDir: true, Empty: true}
	delete(m.dirs, "/release/b")
	m.units["a.service"] = UnitInfo{LoadState: "loaded", NeedDaemonReload: true, FragmentPath: "/etc/systemd/system/a.service"}
	m.units["b.service"] = UnitInfo{LoadState: "not-found"}
	m.free = 100 << 20

	err := Preflight(context.Background(), deployPlan(), preflightOf(m, false))
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PreflightError", err)
	}
	want := []string{
		`rsync: not found on PATH on this machine (the rsync); needed by a (step "deploy"), b (step "deploy"). Install it, or give its absolute path`,
		"source directory /release/a is empty: copying it would empty /srv/a; needed by a (step \"deploy\"). Check `--deploy-path` (the build may have failed); `--force` does not override this",
		"unit a.service: /etc/systemd/system/a.service (or a drop-in) changed on disk since systemd loaded it, so the backup would save the edited file and a rollback would restore it; needed by a. Run `systemctl daemon-reload` if the edit is meant, or undo it; `--force` runs anyway",
		"only 100MiB free on the filesystem of /srv/a on this machine, below min_free_space 1GiB; needed by a, b. Free some space, or lower `min_free_space` in the plan's defaults; `--force` runs anyway",
		"source directory /release/b does not exist on this machine; needed by b (step \"deploy\"). Check `--deploy-path` and the step's from",
		"unit b.service is not loaded on this machine (LoadState=not-found); needed by b. Check the unit name, or install its unit file and run `systemctl daemon-reload`",
	}
	if !slices.Equal(pe.Problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(pe.Problems, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(err.Error(), "preflight found 6 problems; nothing was changed:\n  - rsync:") {
		t.Errorf("message starts %q", err.Error())
	}
}

// TestPreflightForce: --force turns a changed unit file and low free space
// into warnings, never an empty source.
func TestPreflightForce(t *testing.T) {
	m := healthyMachine()
	m.units["a.service"] = UnitInfo{LoadState: "loaded", NeedDaemonReload: true}
	m.free = 1 << 20
	opts := preflightOf(m, true)
	var warnings []string
	opts.Warn = func(s string) { warnings = append(warnings, s) }
	if err := Preflight(context.Background(), deployPlan(), opts); err != nil {
		t.Fatalf("forced preflight: %v", err)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "changed on disk") || !strings.Contains(warnings[1], "below min_free_space") {
		t.Errorf("warnings = %q", warnings)
	}

	m.dirs["/release/b"] = DirInfo{Exists: true, IsDir: true, Empty: true}
	err := Preflight(context.Background(), deployPlan(), opts)
	var pe *PreflightError
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || !strings.Contains(pe.Problems[0], "/release/b is empty") {
		t.Fatalf("forced preflight with an empty source: %v, want it refused", err)
	}
}

// TestPreflightProgramArrivingWithTheDeploy: a program inside the working
// directory is looked for in the deploy source, where it comes from.
func TestPreflightProgramArrivingWithTheDeploy(t *testing.T) {
	plan := deployPlan()
	for _, svc := range plan.Services {
		svc.Steps[1].Needs.Programs = []planner.Program{{Name: "./bin/migrate", Dir: svc.WorkingDir, Use: "command"}}
	}
	m := healthyMachine()
	m.programs["/release/b/bin/migrate"] = true // b's only in the release; a's already deployed
	if err := Preflight(context.Background(), plan, preflightOf(m, false)); err != nil {
		t.Fatal(err)
	}
	delete(m.programs, "/release/b/bin/migrate")
	err := Preflight(context.Background(), plan, preflightOf(m, false))
	if err == nil || !strings.Contains(err.Error(), "./bin/migrate: no such file on this machine (the command); needed by b") {
		t.Fatalf("err = %v, want b's missing program", err)
	}
}

func TestPreflightWithoutSystemdSkipsUnits(t *testing.T) {
	m := healthyMachine()
	m.unitsErr = ErrUnitsUnknown
	opts := preflightOf(m, false)
	var warnings []string
	opts.Warn = func(s string) { warnings = append(warnings, s) }
	if err := Preflight(context.Background(), deployPlan(), opts); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "units not checked on this machine") {
		t.Errorf("warnings = %q", warnings)
	}
}

// TestRunRefusedByPreflight: a problem stops Run before any event, step,
// journal or lock file is left.
func TestRunRefusedByPreflight(t *testing.T) {
	m := healthyMachine()
	m.dirs["/release/a"] = DirInfo{Exists: true, IsDir: true, Empty: true}
	rec := &recorder{}
	sink := &memSink{}
	lock := filepath.Join(t.TempDir(), "rollout.lock")
	opts := preflightOf(m, true)
	res, err := Run(context.Background(), deployPlan(), Options{Build: builder(rec, nil), Events: sink, LockPath: lock, Preflight: &opts})
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PreflightError", err)
	}
	if res.RunID != "" || len(sink.events) != 0 || len(rec.snapshot()) != 0 {
		t.Errorf("a refused run did something: result %+v, %d events, steps %q", res, len(sink.events), rec.snapshot())
	}
	if runs, _ := os.ReadDir(JournalDir(lock)); len(runs) != 0 {
		t.Errorf("a refused run left a journal: %v", runs)
	}
}

// TestRunStartNotWrittenRefusesTheRun: the hostile test's `--events
// /dev/full`. No step runs, no journal is left, and the error says so.
func TestRunStartNotWrittenRefusesTheRun(t *testing.T) {
	rec := &recorder{}
	sink := &memSink{failAfter: -1}
	lock := filepath.Join(t.TempDir(), "rollout.lock")
	res, err := Run(context.Background(), makePlan(specs("a", "b")...), Options{Build: builder(rec, nil), Events: sink, LockPath: lock})
	var ee *EventsLogError
	if !errors.As(err, &ee) || ee.Started {
		t.Fatalf("err = %v, want an EventsLogError before the start", err)
	}
	if !strings.Contains(err.Error(), "cannot write RUN_START to the events log, so the run did not start and nothing was changed: disk full") {
		t.Errorf("err = %q", err)
	}
	if res.RunID != "" || len(rec.snapshot()) != 0 {
		t.Errorf("the run went on: result %+v, steps %q", res, rec.snapshot())
	}
	if runs, _ := os.ReadDir(JournalDir(lock)); len(runs) != 0 {
		t.Errorf("a refused run left a journal: %v", runs)
	}
}

// TestPreflightEmptyReleaseSource: a step that creates its target (a
// release) declares only its source; an empty one is still refused.
func TestPreflightEmptyReleaseSource(t *testing.T) {
	plan := deployPlan()
	plan.Services = plan.Services[:1]
	plan.Services[0].Steps[0].Needs = planner.Needs{Copies: []planner.Copy{{From: "/release/a"}}}
	m := healthyMachine()
	m.dirs["/release/a"] = DirInfo{Exists: true, IsDir: true, Empty: true}
	err := Preflight(context.Background(), plan, preflightOf(m, true))
	if err == nil || !strings.Contains(err.Error(), "source directory /release/a is empty: it would deploy no code") {
		t.Fatalf("err = %v", err)
	}
}

// countingMachine counts Unit reads and how many were in flight at once;
// each read waits (up to 300 ms) for a second one to arrive, so that a
// preflight that reads one unit after the other shows up as a maximum of 1.
type countingMachine struct {
	fakeMachine
	mu             sync.Mutex
	calls, now, hi int
	arrived        chan struct{}
}

func (m *countingMachine) Unit(ctx context.Context, name string) (UnitInfo, error) {
	m.mu.Lock()
	m.calls++
	m.now++
	m.hi = max(m.hi, m.now)
	m.mu.Unlock()
	select {
	case m.arrived <- struct{}{}:
	case <-m.arrived:
	case <-time.After(300 * time.Millisecond):
	}
	m.mu.Lock()
	m.now--
	m.mu.Unlock()
	return UnitInfo{LoadState: "loaded"}, nil
}

// TestPreflightReadsConcurrentlyAndOnce: preflight's unit reads overlap
// (a host's round trips must not add up before the first restart), each
// unit is read once however many services name it, and the problems
// still come out in plan order.
func TestPreflightReadsConcurrentlyAndOnce(t *testing.T) {
	var defs []string
	for i := range 12 {
		defs = append(defs, fmt.Sprintf("s%02d", i))
	}
	plan := makePlan(specs(defs...)...)
	for i, svc := range plan.Services {
		svc.Steps[0].Needs.Units = []string{fmt.Sprintf("u%d.service", i%6), "shared.service"}
	}
	m := &countingMachine{arrived: make(chan struct{})}
	if err := Preflight(context.Background(), plan, PreflightOptions{Machine: func(*planner.Service) Machine { return m }}); err != nil {
		t.Fatal(err)
	}
	if m.calls != 7 {
		t.Errorf("read units %d times, want 7 (6 units and the shared one, once each)", m.calls)
	}
	if m.hi < 2 {
		t.Errorf("at most %d unit read in flight: preflight reads one after the other", m.hi)
	}

	// Problems in plan order, each once, with every service that shares it.
	fm := healthyMachine()
	fm.units = map[string]UnitInfo{}
	err := Preflight(context.Background(), plan, PreflightOptions{Machine: func(*planner.Service) Machine { return fm }})
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a PreflightError", err)
	}
	var got []string
	for _, p := range pe.Problems {
		got = append(got, strings.Fields(p)[1])
	}
	want := []string{"u0.service", "shared.service", "u1.service", "u2.service", "u3.service", "u4.service", "u5.service"}
	if !slices.Equal(got, want) {
		t.Errorf("problems name %v, want %v (plan order)", got, want)
	}
}

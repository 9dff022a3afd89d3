package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// recordedUndo and recordedReopener are fakes that can be journaled.
type recordedUndo struct{ fakeUndo }

func (u *recordedUndo) Record() UndoRecord {
	return UndoRecord{Kind: "fake", Args: map[string]string{"name": u.name}}
}

type recordedReopener struct{ fakeReopener }

func (u *recordedReopener) Record() UndoRecord {
	return UndoRecord{Kind: "fake_reopen", Args: map[string]string{"name": u.name}}
}

// inFlightStep is a step that says what undoes it while it runs.
type inFlightStep struct {
	fakeStep
}

func (s inFlightStep) InFlightRecord(*Env) (UndoRecord, bool) {
	return UndoRecord{Kind: "fake_reopen", Args: map[string]string{"name": "in-flight"}}, true
}

// TestJournalFollowsTheRun reads the journal from inside the steps: a step
// that changes nothing is not written; a step with an in-flight undo is
// written before it starts, with what earlier steps pushed; an undo no
// later write covers is written when its step ends; a run that ends
// normally removes the journal.
func TestJournalFollowsTheRun(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "rollout", "lock")
	dir := JournalDir(lock)
	rec := &recorder{}
	var seen []string
	snapshot := func(context.Context, *Env) (Undo, error) {
		// The live run's journal is not an unfinished run's (it is
		// locked): read the file itself.
		if runs, err := UnfinishedRuns(dir); err != nil || len(runs) != 0 {
			t.Errorf("unfinished runs during the run: %d, %v; want none (the run is alive)", len(runs), err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*"+journalExt))
		if len(files) != 1 {
			t.Errorf("journals during the run: %q", files)
			return nil, nil
		}
		j, err := ReadJournal(files[0])
		if err != nil {
			t.Error(err)
			return nil, nil
		}
		if j.RunID != "test-run" || j.PID != os.Getpid() || j.PlanFile != "/plans/p.hcl" {
			t.Errorf("journal: %+v", j)
		}
		if len(j.Services) == 0 {
			seen = append(seen, "(no service)")
			return nil, nil
		}
		s := j.Services[0]
		line := s.Name + " step=" + s.Step
		if s.InFlight != nil {
			line += " in-flight=" + s.InFlight.Kind
		}
		for _, u := range s.Undos {
			line += fmt.Sprintf(" [%s %s %s recorded=%v]", u.Step, u.Kind, u.Args["name"], u.Recorded)
		}
		seen = append(seen, line)
		return nil, nil
	}
	plan := makePlan(svcSpec{def: "a", steps: []string{"backup", "restart", "plain", "verify"}})
	build := func(svc *planner.Service, st *planner.Step) (Step, error) {
		key := svc.Name + "/" + st.Name
		switch st.Name {
		case "backup":
			return fakeStep{key: key, do: func(ctx context.Context, env *Env) (Undo, error) {
				snapshot(ctx, env)
				return &recordedUndo{fakeUndo{name: "backup", rec: rec}}, nil
			}}, nil
		case "restart":
			return inFlightStep{fakeStep{key: key, do: func(ctx context.Context, env *Env) (Undo, error) {
				snapshot(ctx, env)
				return &recordedReopener{fakeReopener{fakeUndo: fakeUndo{name: "restart", rec: rec}}}, nil
			}}}, nil
		case "plain":
			return fakeStep{key: key, do: func(ctx context.Context, env *Env) (Undo, error) {
				snapshot(ctx, env)
				return &fakeUndo{name: "plain", rec: rec}, nil
			}}, nil
		}
		return fakeStep{key: key, do: snapshot}, nil
	}
	res, _ := run(t, context.Background(), plan, Options{Build: build, LockPath: lock, PlanFile: "/plans/p.hcl"})
	if res.ExitCode() != 0 {
		t.Fatalf("run: %+v", res)
	}
	want := []string{
		// backup changes nothing recovery must undo until restart starts.
		"(no service)",
		"a step=restart in-flight=fake_reopen [backup fake backup recorded=true]",
		// restart pushed another undo than it announced, and plain has no
		// in-flight undo to carry it: written when restart ended.
		"a step= [backup fake backup recorded=true] [restart fake_reopen restart recorded=true]",
		"a step= [backup fake backup recorded=true] [restart fake_reopen restart recorded=true] [plain   recorded=false]",
	}
	if !slices.Equal(seen, want) {
		t.Errorf("journal during the run:\n got %q\nwant %q", seen, want)
	}
	if runs, err := UnfinishedRuns(dir); err != nil || len(runs) != 0 {
		t.Errorf("after the run: %d journals, %v; want none", len(runs), err)
	}
}

// TestJournalWritesPerService pins how many durable journal writes a
// service costs in the canned api pipeline: one per step that announces
// its undo (deploy, migrate, restart; the backup's undo rides with the
// deploy's), one for its end, nothing for the read-only checks. The run
// adds its header and its ending.
func TestJournalWritesPerService(t *testing.T) {
	for _, tc := range []struct {
		steps []string
		want  int64
	}{
		{benchPipeline, 4},
		{[]string{"precheck", "restart", "verify"}, 2},
		{[]string{"precheck", "verify"}, 0},
	} {
		sp := specs("a", "b", "c")
		for i := range sp {
			sp[i].steps = tc.steps
		}
		before := journalWrites.Load()
		res, _ := run(t, context.Background(), makePlan(sp...), Options{Build: benchBuild(&recorder{}), LockPath: filepath.Join(t.TempDir(), "lock")})
		if len(res.Succeeded) != 3 {
			t.Fatalf("run: %+v", res)
		}
		if got := journalWrites.Load() - before; got != 3*tc.want+2 {
			t.Errorf("%q: %d writes for 3 services, want %d (%d per service, 2 per run)", tc.steps, got, 3*tc.want+2, tc.want)
		}
	}
}

// TestRunRefusedWhileJournalExists: a journal left by a dead run stops the
// next run before it starts, naming the run and `rollout recover`.
func TestRunRefusedWhileJournalExists(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "lock")
	dead := &Journal{RunID: "dead-run", PID: 999999, Plan: "sso", Started: time.Now(), Services: []JournalService{{Name: "sso.api", Unit: "sso-api.service"}}}
	if err := os.MkdirAll(JournalDir(lock), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := writeJournalFile(dead, filepath.Join(JournalDir(lock), "dead-run.journal")); err != nil {
		t.Fatal(err)
	}
	log := &eventLog{}
	rec := &recorder{}
	res, err := Run(context.Background(), makePlan(specs("a")...), Options{Build: builder(rec, nil), LockPath: lock, Observe: log.observe, UserManager: true})
	if !errors.Is(err, ErrUnfinishedRun) {
		t.Fatalf("Run = %v, want ErrUnfinishedRun", err)
	}
	for _, want := range []string{"dead-run", `plan "sso"`, "pid 999999", "sso.api", "`rollout recover --user`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if res.RunID != "" || len(log.events) != 0 || len(rec.snapshot()) != 0 {
		t.Errorf("a refused run did something: %+v, %d events, %q", res, len(log.events), rec.snapshot())
	}
}

// TestRecoverRunsTheSameRollback: a journal with a service in flight is
// rolled back by the executor's rollback, in its order (reopeners bracket
// the undos below them), skipping what the dead run had undone already,
// with the dead run's id; an undo that was not journaled fails the
// rollback with the manual commands.
func TestRecoverRunsTheSameRollback(t *testing.T) {
	rec := &recorder{}
	rebuild := func(r UndoRecord) (Undo, error) {
		name := r.Args["name"]
		switch r.Kind {
		case "fake":
			return &fakeUndo{name: name, rec: rec}, nil
		case "fake_reopen":
			return &fakeReopener{fakeUndo: fakeUndo{name: name, rec: rec}}, nil
		}
		return nil, fmt.Errorf("unknown kind %q", r.Kind)
	}
	j := &Journal{RunID: "dead-run", Plan: "sso", UserManager: true, Services: []JournalService{
		{Name: "a", Unit: "a.service", Step: "settle", Undos: []JournalUndo{
			{UndoRecord: UndoRecord{Kind: "fake", Step: "backup", Args: map[string]string{"name": "backup"}}, Recorded: true},
			{UndoRecord: UndoRecord{Kind: "fake", Step: "deploy", Args: map[string]string{"name": "deploy"}}, Recorded: true, Undone: true},
			{UndoRecord: UndoRecord{Kind: "fake_reopen", Step: "restart", Args: map[string]string{"name": "restart"}}, Recorded: true},
		}},
		{Name: "b", Unit: "b.service", Step: "restart",
			InFlight: &UndoRecord{Kind: "fake_reopen", Step: "restart", Args: map[string]string{"name": "b-restart"}},
			Undos: []JournalUndo{
				{UndoRecord: UndoRecord{Step: "migrate"}, Describe: "run [\"down\"]"},
			}},
	}}
	log := &eventLog{}
	res, err := Recover(context.Background(), j, RecoverOptions{Rebuild: rebuild, Observe: log.observe, Now: newFakeClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"undo restart", "undo backup", "reopen restart", "undo b-restart", "reopen b-restart"}; !slices.Equal(rec.snapshot(), want) {
		t.Errorf("recovery ran %q, want %q", rec.snapshot(), want)
	}
	if !slices.Equal(res.RolledBack, []string{"a"}) || !slices.Equal(res.RollbackFailed, []string{"b"}) || res.ExitCode() != 3 {
		t.Errorf("result %+v", res)
	}
	want := []string{
		"ROLLBACK_START a", "STEP_START a restart rollback", "STEP_SUCCESS a restart rollback",
		"STEP_START a backup rollback", "STEP_SUCCESS a backup rollback",
		"STEP_START a restart rollback", "STEP_SUCCESS a restart rollback", "ROLLBACK_SUCCESS a",
		"ROLLBACK_START b", "STEP_START b restart rollback", "STEP_SUCCESS b restart rollback",
		"STEP_START b migrate rollback", "STEP_FAILED b migrate rollback",
		"STEP_START b restart rollback", "STEP_SUCCESS b restart rollback", "ROLLBACK_FAILED b",
		"RUN_FAILED",
	}
	if got := log.lines(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	for _, ev := range log.contract() {
		if ev.RunID != "dead-run" {
			t.Errorf("event %s has run id %q, want the dead run's", ev.Event, ev.RunID)
		}
	}
	failed := log.find(RollbackFailed, "b")
	if len(failed) != 1 || !strings.Contains(failed[0].Message, "systemctl --user start b.service") {
		t.Errorf("ROLLBACK_FAILED lacks the manual commands: %+v", failed)
	}
	if end := log.find(RunFailed, ""); len(end) != 1 || !strings.HasPrefix(end[0].Message, "recovered") {
		t.Errorf("RUN_FAILED = %+v, want message recovered", end)
	}
}

// TestEventLogSurvivesSIGKILL kills a process that appends events as fast
// as it can, at an arbitrary moment, twice. A kill can tear at most the
// line being written (the kernel may stop a write that spans pages); the
// next writer ends that line, so every other line is a whole JSON event and
// nothing written before or after the kill is lost.
func TestEventLogSurvivesSIGKILL(t *testing.T) {
	if child := os.Getenv("ROLLOUT_EVENTLOG_CHILD"); child != "" {
		sink, err := OpenEventLog(child)
		if err != nil {
			os.Exit(2)
		}
		msg := strings.Repeat("x", 3000) // lines larger than a pipe buffer's atomic write
		for i := 0; ; i++ {
			_ = sink.Write(Event{Time: time.Now(), RunID: os.Getenv("ROLLOUT_EVENTLOG_RUN"), Event: StepStart, Service: "s", Message: msg, Attempt: i})
		}
	}
	path := filepath.Join(t.TempDir(), "events.jsonl")
	const kills = 2
	for round := 0; round < kills; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEventLogSurvivesSIGKILL$")
		cmd.Env = append(os.Environ(), "ROLLOUT_EVENTLOG_CHILD="+path, fmt.Sprintf("ROLLOUT_EVENTLOG_RUN=child-%d", round))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once it has written something, mid-stream.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if fi, err := os.Stat(path); err == nil && fi.Size() > int64(round+1)<<20 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("the child wrote nothing")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	// The next run opens the log: a torn last line gets its end.
	sink, err := OpenEventLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(Event{Time: time.Now(), RunID: "next", Event: RunStart}); err != nil {
		t.Fatal(err)
	}
	sink.Close()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	var runs []string // the run of each whole line, "" for a torn one
	events, torn := 0, 0
	for i, line := range lines {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			torn++
			runs = append(runs, "")
			// Only the line a killed child was writing may be torn:
			// the next line is the next writer's.
			if i+1 >= len(lines) {
				t.Errorf("the last line is torn: the next writer did not end it")
			}
			continue
		}
		events++
		runs = append(runs, e.RunID)
	}
	for i, r := range runs {
		if r == "" && i > 0 && i+1 < len(runs) && runs[i-1] == runs[i+1] {
			t.Errorf("line %d is torn in the middle of run %s's writing, not at a kill", i+1, runs[i-1])
		}
	}
	if torn > kills || events < 100 || runs[len(runs)-1] != "next" {
		t.Errorf("%d torn lines (at most %d, one per kill), %d events, last line of run %q (want next)", torn, kills, events, runs[len(runs)-1])
	}
	t.Logf("%d events in %d bytes survived %d SIGKILLs, %d torn lines", events, len(data), kills, torn)
	if fi, _ := os.Stat(path); fi.Mode().Perm()&^0o640 != 0 {
		t.Errorf("events log mode %v, want at most 0640", fi.Mode().Perm())
	}
}

// writeJournalFile writes j as a dead run leaves it: a header and one
// line per service in flight.
func writeJournalFile(j *Journal, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w := &journalWriter{f: f, path: path}
	defer f.Close()
	head := *j
	head.Services = nil
	if err := w.append(journalLine{Run: &head}, true); err != nil {
		return err
	}
	for i := range j.Services {
		if err := w.append(journalLine{Service: &j.Services[i]}, true); err != nil {
			return err
		}
	}
	return nil
}

// TestRunRemovesTheJournalOfARunThatStartedNothing: a run killed while
// preflight read (its journal is created meanwhile) leaves a journal with
// no service in it. Nothing is to recover, so the next run removes it,
// says so, and goes on; a journal naming a service still stops it
// (TestRunRefusedWhileJournalExists). A run whose preflight fails leaves
// no journal behind.
func TestRunRemovesTheJournalOfARunThatStartedNothing(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "lock")
	if err := os.MkdirAll(JournalDir(lock), 0o750); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(JournalDir(lock), "killed-in-preflight.journal")
	if err := writeJournalFile(&Journal{RunID: "killed-in-preflight", Plan: "sso", Started: time.Now(), Services: []JournalService{}}, empty); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	rec := &recorder{}
	res, err := Run(context.Background(), makePlan(specs("a")...), Options{Build: builder(rec, nil), LockPath: lock, Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil || res.ExitCode() != 0 {
		t.Fatalf("Run = %v (exit %d), want a run", err, res.ExitCode())
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the empty journal is still there (%v)", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "killed-in-preflight") {
		t.Errorf("warnings = %q, want one naming the removed run", warnings)
	}

	// Preflight fails: the journal created meanwhile is removed.
	fm := healthyMachine()
	fm.units = map[string]UnitInfo{}
	plan := makePlan(specs("b")...)
	plan.Services[0].Steps[0].Needs.Units = []string{"b.service"}
	_, err = Run(context.Background(), plan, Options{Build: builder(rec, nil), LockPath: lock,
		Preflight: &PreflightOptions{Machine: func(*planner.Service) Machine { return fm }}})
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("Run = %v, want a PreflightError", err)
	}
	left, _ := filepath.Glob(filepath.Join(JournalDir(lock), "*"))
	if len(left) != 0 {
		t.Errorf("journals left after a failed preflight: %q", left)
	}
}

// TestLiveJournalIsNotUnfinished: a run holds a lock on its journal for
// as long as it lives. Its journal is not an unfinished run's (another
// run goes on, recover leaves it alone); once the process is gone (the
// lock with it) it is.
func TestLiveJournalIsNotUnfinished(t *testing.T) {
	dir := t.TempDir()
	plan := makePlan(specs("a")...)
	w, err := newJournalWriter(dir, plan, Options{RunID: "live-run", Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if runs, err := UnfinishedRuns(dir); err != nil || len(runs) != 0 {
		t.Errorf("a live run's journal is unfinished: %d, %v", len(runs), err)
	}
	if _, err := openJournalWriter(w.path); err == nil || !strings.Contains(err.Error(), "still alive") {
		t.Errorf("recover opened a live run's journal: %v", err)
	}
	if hidden, _ := filepath.Glob(filepath.Join(dir, ".*")); len(hidden) != 0 {
		t.Errorf("the journal's hidden name is left: %q", hidden)
	}
	w.close() // as the process's death would
	runs, err := UnfinishedRuns(dir)
	if err != nil || len(runs) != 1 || runs[0].RunID != "live-run" {
		t.Fatalf("a dead run's journal: %v, %v", runs, err)
	}
	rw, err := openJournalWriter(w.path)
	if err != nil {
		t.Fatalf("recover cannot open a dead run's journal: %v", err)
	}
	rw.close()
}

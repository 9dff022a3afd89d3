package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/planner"
)

func TestRollbackOrder(t *testing.T) {
	errVerify := errors.New("health check failed")
	tests := []struct {
		name  string
		steps []string
		// undos maps a step to the undo it returns: "undo" or "reopener".
		undos     map[string]string
		failStep  string
		wantCalls []string
	}{
		{
			name:     "reference flow: stop, restore, reopen",
			steps:    []string{"precheck", "backup", "deploy", "restart", "verify"},
			undos:    map[string]string{"backup": "undo", "deploy": "undo", "restart": "reopener"},
			failStep: "verify",
			wantCalls: []string{
				"do a/precheck", "do a/backup", "do a/deploy", "do a/restart", "do a/verify",
				"undo restart", "undo deploy", "undo backup", "reopen restart",
			},
		},
		{
			name:     "nested reopeners",
			steps:    []string{"u1", "r1", "u2", "r2", "verify"},
			undos:    map[string]string{"u1": "undo", "r1": "reopener", "u2": "undo", "r2": "reopener"},
			failStep: "verify",
			wantCalls: []string{
				"do a/u1", "do a/r1", "do a/u2", "do a/r2", "do a/verify",
				"undo r2", "undo u2", "undo r1", "undo u1", "reopen r1", "reopen r2",
			},
		},
		{
			// A drain before the restart is undone (back into traffic)
			// after the unit is started and verified, not while it is
			// stopped.
			name:     "readmission after the reopen",
			steps:    []string{"drain", "backup", "restart", "ready_check", "verify"},
			undos:    map[string]string{"drain": "readmitter", "backup": "undo", "restart": "reopener"},
			failStep: "verify",
			wantCalls: []string{
				"do a/drain", "do a/backup", "do a/restart", "do a/ready_check", "do a/verify",
				"undo restart", "undo backup", "reopen restart", "undo drain",
			},
		},
		{
			name:      "undo returned with the error is pushed",
			steps:     []string{"backup", "deploy"},
			undos:     map[string]string{"backup": "undo", "deploy": "undo"},
			failStep:  "deploy",
			wantCalls: []string{"do a/backup", "do a/deploy", "undo deploy", "undo backup"},
		},
		{
			name:      "steps after the failure do not run",
			steps:     []string{"backup", "restart", "verify", "settle"},
			undos:     map[string]string{"backup": "undo", "restart": "reopener"},
			failStep:  "restart",
			wantCalls: []string{"do a/backup", "do a/restart", "undo restart", "undo backup", "reopen restart"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			plan := makePlan(svcSpec{def: "a", steps: tt.steps})
			script := map[string]doFunc{}
			for _, st := range tt.steps {
				var undo Undo
				switch tt.undos[st] {
				case "undo":
					undo = &fakeUndo{name: st, rec: rec}
				case "reopener":
					undo = &fakeReopener{fakeUndo: fakeUndo{name: st, rec: rec}}
				case "readmitter":
					undo = &fakeReadmitter{fakeUndo: fakeUndo{name: st, rec: rec}}
				}
				var err error
				if st == tt.failStep {
					err = errVerify
				}
				script["a/"+st] = returning(undo, err)
			}
			res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
			if got := rec.snapshot(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantCalls, "\n"))
			}
			if !slices.Equal(res.RolledBack, []string{"a"}) || !slices.Equal(res.Failed, []string{"a"}) || res.ExitCode() != 1 {
				t.Errorf("result %+v, ExitCode %d; want a failed and rolled back, exit 1", res, res.ExitCode())
			}
			// The rollback's STEP events mirror the calls, with Phase
			// rollback and the Describe text.
			var rollbackSteps []string
			for _, ev := range log.find(StepSuccess, "a") {
				if ev.Phase == "rollback" {
					rollbackSteps = append(rollbackSteps, ev.Message)
				}
			}
			var wantSteps []string
			for _, c := range tt.wantCalls {
				if name, ok := strings.CutPrefix(c, "undo "); ok {
					wantSteps = append(wantSteps, "undo "+name)
				}
				if name, ok := strings.CutPrefix(c, "reopen "); ok {
					wantSteps = append(wantSteps, "reopen "+name)
				}
			}
			if !slices.Equal(rollbackSteps, wantSteps) {
				t.Errorf("rollback STEP_SUCCESS messages = %v, want %v", rollbackSteps, wantSteps)
			}
			if n := len(log.find(RollbackStart, "a")); n != 1 {
				t.Errorf("%d ROLLBACK_START events, want 1", n)
			}
			if n := len(log.find(RollbackSuccess, "a")); n != 1 {
				t.Errorf("%d ROLLBACK_SUCCESS events, want 1", n)
			}
			failed := log.find(ServiceRestartFailed, "a")
			if len(failed) != 1 || failed[0].Message != "rolled back" || !strings.Contains(failed[0].Error, tt.failStep) {
				t.Errorf("SERVICE_RESTART_FAILED = %+v", failed)
			}
		})
	}
}

func TestRollbackEventSequence(t *testing.T) {
	rec := &recorder{}
	plan := makePlan(svcSpec{def: "a", steps: []string{"backup", "restart", "verify"}})
	script := map[string]doFunc{
		"a/backup":  returning(&fakeUndo{name: "backup", rec: rec}, nil),
		"a/restart": returning(&fakeReopener{fakeUndo: fakeUndo{name: "restart", rec: rec}}, nil),
		"a/verify":  returning(nil, errors.New("unhealthy")),
	}
	_, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
	want := []string{
		RunStart,
		ServiceRestartStart + " a",
		StepStart + " a backup", StepSuccess + " a backup",
		StepStart + " a restart", StepSuccess + " a restart",
		StepStart + " a verify", StepFailed + " a verify",
		RollbackStart + " a",
		StepStart + " a restart rollback", StepSuccess + " a restart rollback",
		StepStart + " a backup rollback", StepSuccess + " a backup rollback",
		StepStart + " a restart rollback", StepSuccess + " a restart rollback",
		RollbackSuccess + " a",
		ServiceRestartFailed + " a",
		RunFailed,
	}
	if got := log.lines(); !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The fake clock ticks 1ms a reading: every *_SUCCESS/*_FAILED event
	// carries a duration.
	for _, ev := range log.contract() {
		if strings.HasSuffix(ev.Event, "_SUCCESS") || strings.HasSuffix(ev.Event, "_FAILED") {
			if ev.DurationMS <= 0 {
				t.Errorf("%s %s %s has duration %d", ev.Event, ev.Service, ev.Step, ev.DurationMS)
			}
		}
	}
}

func TestIrreversibleUndoDoesNotFailRollback(t *testing.T) {
	rec := &recorder{}
	plan := makePlan(svcSpec{def: "a", steps: []string{"backup", "migrate", "verify"}})
	script := map[string]doFunc{
		"a/backup":  returning(&fakeUndo{name: "backup", rec: rec}, nil),
		"a/migrate": returning(&fakeUndo{name: "migrate", rec: rec, err: fmt.Errorf("no rollback_command: %w", ErrIrreversible)}, nil),
		"a/verify":  returning(nil, errors.New("unhealthy")),
	}
	res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
	if !slices.Equal(res.RolledBack, []string{"a"}) || len(res.RollbackFailed) != 0 || res.ExitCode() != 1 {
		t.Errorf("result %+v; want rolled back, exit 1", res)
	}
	var found bool
	for _, ev := range log.find(StepSuccess, "a") {
		if ev.Phase == "rollback" && ev.Step == "migrate" {
			found = ev.Message == "irreversible: no rollback_command: irreversible"
			if !found {
				t.Errorf("irreversible STEP_SUCCESS message = %q", ev.Message)
			}
		}
	}
	if !found {
		t.Errorf("no rollback STEP_SUCCESS for migrate")
	}
	if want := []string{"do a/backup", "do a/migrate", "do a/verify", "undo migrate", "undo backup"}; !slices.Equal(rec.snapshot(), want) {
		t.Errorf("calls = %v, want %v", rec.snapshot(), want)
	}
}

// TestRollbackNamesWhatItCouldNotUndo: a rollback that had to leave a
// migration applied must not read as a plain ROLLBACK_SUCCESS. The event
// and the result name the step.
func TestRollbackNamesWhatItCouldNotUndo(t *testing.T) {
	rec := &recorder{}
	plan := makePlan(svcSpec{def: "a", steps: []string{"backup", "migrate", "seed", "verify"}})
	irreversible := fmt.Errorf("no rollback_command: %w", ErrIrreversible)
	script := map[string]doFunc{
		"a/backup":  returning(&fakeUndo{name: "backup", rec: rec}, nil),
		"a/migrate": returning(&fakeUndo{name: "migrate", rec: rec, err: irreversible}, nil),
		"a/seed":    returning(&fakeUndo{name: "seed", rec: rec, err: irreversible}, nil),
		"a/verify":  returning(nil, errors.New("unhealthy")),
	}
	res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
	want := []string{"migrate", "seed"}
	if got := res.Irreversible["a"]; !slices.Equal(got, want) {
		t.Errorf("Result.Irreversible[a] = %q, want %q", got, want)
	}
	evs := log.find(RollbackSuccess, "a")
	if len(evs) != 1 {
		t.Fatalf("%d ROLLBACK_SUCCESS events, want 1", len(evs))
	}
	if !slices.Equal(evs[0].Irreversible, want) {
		t.Errorf("ROLLBACK_SUCCESS irreversible = %q, want %q", evs[0].Irreversible, want)
	}
	if !strings.Contains(evs[0].Message, `NOT UNDONE: "migrate", "seed"`) {
		t.Errorf("ROLLBACK_SUCCESS message = %q, want it to say what was not undone", evs[0].Message)
	}
}

// TestRollbackOfReversibleStepsNamesNothing: the field is absent when the
// rollback undid everything.
func TestRollbackOfReversibleStepsNamesNothing(t *testing.T) {
	rec := &recorder{}
	plan := makePlan(svcSpec{def: "a", steps: []string{"backup", "verify"}})
	script := map[string]doFunc{
		"a/backup": returning(&fakeUndo{name: "backup", rec: rec}, nil),
		"a/verify": returning(nil, errors.New("unhealthy")),
	}
	res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
	if res.Irreversible != nil {
		t.Errorf("Result.Irreversible = %v, want nil", res.Irreversible)
	}
	for _, ev := range log.find(RollbackSuccess, "a") {
		if ev.Irreversible != nil || ev.Message != "" {
			t.Errorf("ROLLBACK_SUCCESS = %+v, want no irreversible steps", ev)
		}
	}
}

func TestFailingUndoFailsRollbackButUnwindsTheRest(t *testing.T) {
	tests := []struct {
		name      string
		undoErr   error
		reopenErr error
		wantError string
		wantDesc  string
	}{
		{"undo fails", errors.New("permission denied"), nil, "backup: permission denied", "undo backup"},
		{"reopen fails", nil, errors.New("unit failed to start"), "restart (reopen): unit failed to start", "reopen restart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			plan := makePlan(
				svcSpec{def: "sso.api", steps: []string{"code", "backup", "restart", "verify"}},
				svcSpec{def: "next"},
			)
			plan.Services[0].Unit = "lilith-sso-api.service"
			script := map[string]doFunc{
				"sso.api/code":    returning(&fakeUndo{name: "code", rec: rec}, nil),
				"sso.api/backup":  returning(&fakeUndo{name: "backup", rec: rec, err: tt.undoErr}, nil),
				"sso.api/restart": returning(&fakeReopener{fakeUndo: fakeUndo{name: "restart", rec: rec}, reopenErr: tt.reopenErr}, nil),
				"sso.api/verify":  returning(nil, errors.New("unhealthy")),
			}
			res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script), Parallel: 1})
			// Best effort: the undo below the failing one still runs.
			want := []string{"do sso.api/code", "do sso.api/backup", "do sso.api/restart", "do sso.api/verify",
				"undo restart", "undo backup", "undo code", "reopen restart"}
			if !slices.Equal(rec.snapshot(), want) {
				t.Errorf("calls = %v, want %v", rec.snapshot(), want)
			}
			if !slices.Equal(res.RollbackFailed, []string{"sso.api"}) || !slices.Equal(res.Failed, []string{"sso.api"}) || len(res.RolledBack) != 0 {
				t.Errorf("result %+v; want sso.api in Failed and RollbackFailed only", res)
			}
			if res.ExitCode() != 3 {
				t.Errorf("ExitCode = %d, want 3", res.ExitCode())
			}
			rf := log.find(RollbackFailed, "sso.api")
			if len(rf) != 1 {
				t.Fatalf("%d ROLLBACK_FAILED events, want 1", len(rf))
			}
			if rf[0].Error != tt.wantError {
				t.Errorf("ROLLBACK_FAILED error = %q, want %q", rf[0].Error, tt.wantError)
			}
			for _, line := range []string{
				"sudo systemctl stop lilith-sso-api.service",
				tt.wantDesc,
				"sudo systemctl daemon-reload",
				"sudo systemctl start lilith-sso-api.service",
				"systemctl status lilith-sso-api.service",
				"curl -fsS http://localhost:3001/health",
			} {
				if !strings.Contains(rf[0].Message, line) {
					t.Errorf("ROLLBACK_FAILED message lacks %q:\n%s", line, rf[0].Message)
				}
			}
			if got := log.find(RollbackSuccess, ""); len(got) != 0 {
				t.Errorf("ROLLBACK_SUCCESS after a failed rollback")
			}
			if !slices.Equal(res.Skipped, []string{"next"}) {
				t.Errorf("Skipped = %v, want [next]", res.Skipped)
			}
		})
	}
}

func TestManualRollbackForUserManager(t *testing.T) {
	svc := &planner.Service{Name: "x", Unit: "x.service", Health: &planner.Health{Kind: "tcp", Address: "localhost:6379"}}
	msg := manualRollback(svc, []string{"restore the unit file"}, nil, true)
	for _, want := range []string{"systemctl --user stop x.service", "systemctl --user daemon-reload", "nc -z localhost 6379", "journalctl --user-unit x.service"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "sudo") {
		t.Errorf("user-manager message uses sudo:\n%s", msg)
	}
}

func TestEmptyStackHasNoRollback(t *testing.T) {
	plan := makePlan(svcSpec{def: "a", steps: []string{"precheck", "restart"}})
	rec := &recorder{}
	script := map[string]doFunc{"a/precheck": returning(nil, errors.New("unhealthy before restart"))}
	res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
	if n := len(log.find(RollbackStart, "")); n != 0 {
		t.Errorf("%d ROLLBACK_START events, want none", n)
	}
	if !slices.Equal(res.Failed, []string{"a"}) || len(res.RolledBack) != 0 {
		t.Errorf("result %+v; want a failed, not rolled back", res)
	}
	if got := log.find(ServiceRestartFailed, "a"); len(got) != 1 || got[0].Message != "nothing changed; no rollback needed" {
		t.Errorf("SERVICE_RESTART_FAILED = %+v", got)
	}
	if want := []string{"do a/precheck"}; !slices.Equal(rec.snapshot(), want) {
		t.Errorf("calls = %v, want %v", rec.snapshot(), want)
	}
}

func TestBuildErrorFailsServiceBeforeAnythingRuns(t *testing.T) {
	plan := makePlan(svcSpec{def: "a", steps: []string{"backup", "bogus"}}, svcSpec{def: "b"})
	rec := &recorder{}
	inner := builder(rec, nil)
	build := func(svc *planner.Service, st *planner.Step) (Step, error) {
		if st.Name == "bogus" {
			return nil, errors.New(`unknown step type "bogus"`)
		}
		return inner(svc, st)
	}
	res, log := run(t, context.Background(), plan, Options{Build: build, OnFailure: "continue"})
	if len(rec.snapshot()) != 1 || rec.snapshot()[0] != "do b/restart" {
		t.Errorf("calls = %v, want only b's step", rec.snapshot())
	}
	if len(log.find(StepStart, "a")) != 0 {
		t.Errorf("a step of a started")
	}
	got := log.find(ServiceRestartFailed, "a")
	if len(got) != 1 || got[0].Error != `step bogus: unknown step type "bogus"` {
		t.Errorf("SERVICE_RESTART_FAILED = %+v", got)
	}
	if !slices.Equal(res.Failed, []string{"a"}) || !slices.Equal(res.Succeeded, []string{"b"}) {
		t.Errorf("result %+v", res)
	}
}

func TestPanickingStepFailsAndRollsBack(t *testing.T) {
	rec := &recorder{}
	plan := makePlan(svcSpec{def: "a", steps: []string{"backup", "restart"}})
	script := map[string]doFunc{
		"a/backup":  returning(&fakeUndo{name: "backup", rec: rec}, nil),
		"a/restart": func(context.Context, *Env) (Undo, error) { panic("nil map") },
	}
	res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
	if !slices.Equal(res.RolledBack, []string{"a"}) {
		t.Errorf("result %+v, want a rolled back", res)
	}
	if f := log.find(StepFailed, "a"); len(f) != 1 || !strings.Contains(f[0].Error, "step panicked: nil map") {
		t.Errorf("STEP_FAILED = %+v", f)
	}
}

func TestCommitAfterSuccess(t *testing.T) {
	rec := &recorder{}
	plan := makePlan(svcSpec{def: "a", steps: []string{"snapshot", "backup", "restart"}})
	script := map[string]doFunc{
		"a/snapshot": returning(&fakeCommitter{fakeUndo: fakeUndo{name: "snapshot", rec: rec}, commitErr: errors.New("rm: busy")}, nil),
		"a/backup":   returning(&fakeUndo{name: "backup", rec: rec}, nil),
		"a/restart":  returning(&fakeCommitter{fakeUndo: fakeUndo{name: "restart", rec: rec}}, nil),
	}
	res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
	if !slices.Equal(res.Succeeded, []string{"a"}) || res.ExitCode() != 0 {
		t.Errorf("result %+v; a failed commit must not fail the service", res)
	}
	want := []string{"do a/snapshot", "do a/backup", "do a/restart", "commit restart", "commit snapshot"}
	if !slices.Equal(rec.snapshot(), want) {
		t.Errorf("calls = %v, want %v", rec.snapshot(), want)
	}
	var notes []Event
	for _, ev := range log.events {
		if ev.Event == StepLog {
			notes = append(notes, ev)
		}
	}
	if len(notes) != 1 || notes[0].Step != "snapshot" || notes[0].Error != "rm: busy" {
		t.Errorf("commit notes = %+v, want one for snapshot", notes)
	}
	// The commit comes after the service's success event.
	last := log.contract()[len(log.contract())-2]
	if last.Event != ServiceRestartSuccess {
		t.Errorf("event before RUN_SUCCESS is %s", last.Event)
	}
}

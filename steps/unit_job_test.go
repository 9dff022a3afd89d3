package steps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

func jobStep(typ string) *planner.Step {
	return &planner.Step{Name: typ, Type: typ, Args: map[string]cty.Value{
		"timeout": cty.NullVal(cty.String), "unit": cty.NullVal(cty.String),
	}}
}

// rollback runs undo as the executor does when it is the only undo on the
// stack: Undo, then (for a Reopener) Reopen.
func rollback(t *testing.T, undo executor.Undo, env *executor.Env) error {
	t.Helper()
	if err := undo.Undo(context.Background(), env); err != nil {
		return err
	}
	if r, ok := undo.(executor.Reopener); ok {
		return r.Reopen(context.Background(), env)
	}
	return nil
}

func TestUnitJobs(t *testing.T) {
	tests := []struct {
		name     string
		typ      string
		setup    func(sd *scriptedBackend)
		force    bool
		wantErr  string
		wantDo   string // backend log of Do
		reopener bool
		describe string
		wantUndo string // backend log of the rollback; "-" = no undo
		undoErr  string
	}{
		{
			name:     "restart, rollback stops then starts and checks health",
			typ:      TypeRestart,
			setup:    func(sd *scriptedBackend) { sd.AddUnit("app.service", false) },
			wantDo:   "restart app.service",
			reopener: true,
			describe: "stop app.service",
			wantUndo: "stop app.service,start app.service,health app.service",
		},
		{
			name:     "restart with --force skips the health check on reopen",
			typ:      TypeRestart,
			setup:    func(sd *scriptedBackend) { sd.AddUnit("app.service", false) },
			force:    true,
			wantDo:   "restart app.service",
			reopener: true,
			describe: "stop app.service",
			wantUndo: "stop app.service,start app.service",
		},
		{
			name: "restart that did not take effect fails and still returns the undo",
			typ:  TypeRestart,
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", false)
				sd.noopJobs[OpRestart] = true
			},
			wantErr:  "restart of app.service did not take effect: InvocationID is still",
			wantDo:   "restart app.service",
			reopener: true,
			describe: "stop app.service",
			wantUndo: "stop app.service,start app.service,health app.service",
		},
		{
			name: "restart job failure",
			typ:  TypeRestart,
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", false)
				sd.Fail(OpRestart, "app.service", &JobError{Op: OpRestart, Unit: "app.service", Result: "failed"})
			},
			wantErr:  "job failed",
			wantDo:   "restart app.service",
			reopener: true,
			describe: "stop app.service",
			wantUndo: "stop app.service,start app.service,health app.service",
		},
		{
			name: "reopen fails when the service is unhealthy",
			typ:  TypeRestart,
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", false)
				sd.health = []error{errors.New("GET http://localhost:3001/health: 503 Service Unavailable")}
			},
			wantDo:   "restart app.service",
			reopener: true,
			describe: "stop app.service",
			wantUndo: "stop app.service,start app.service,health app.service",
			undoErr:  "app.service started but is not healthy: health check \"app.service\" failed after 1 attempt: GET http://localhost:3001/health: 503",
		},
		{
			name: "restart of a missing unit changes nothing",
			typ:  TypeRestart,
			setup: func(sd *scriptedBackend) {
			},
			wantErr:  "unit app.service is not-found, not loaded",
			wantUndo: "-",
		},
		{
			name: "restart reloads a changed unit file first",
			typ:  TypeRestart,
			setup: func(sd *scriptedBackend) {
				st := sd.AddUnit("app.service", false)
				st.NeedDaemonReload = true
				sd.SetUnit("app.service", st)
			},
			wantDo:   "daemon-reload,restart app.service",
			reopener: true,
			describe: "stop app.service",
			wantUndo: "stop app.service,start app.service,health app.service",
		},
		{
			name: "start of a stopped unit is undone by stop",
			typ:  TypeStart,
			setup: func(sd *scriptedBackend) {
				sd.SetUnit("app.service", UnitState{ActiveState: "inactive"})
			},
			wantDo:   "start app.service",
			describe: "stop app.service",
			wantUndo: "stop app.service",
		},
		{
			name:     "start of a running unit has nothing to undo",
			typ:      TypeStart,
			setup:    func(sd *scriptedBackend) { sd.AddUnit("app.service", false) },
			wantUndo: "-",
		},
		{
			name:     "stop is undone by start after the restores",
			typ:      TypeStop,
			setup:    func(sd *scriptedBackend) { sd.AddUnit("app.service", false) },
			wantDo:   "stop app.service",
			reopener: true,
			describe: "leave app.service stopped until the undos before it are done",
			wantUndo: "start app.service,health app.service",
		},
		{
			name: "stop of a stopped unit has nothing to undo",
			typ:  TypeStop,
			setup: func(sd *scriptedBackend) {
				sd.SetUnit("app.service", UnitState{ActiveState: "inactive"})
			},
			wantUndo: "-",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := newScripted()
			tt.setup(sd)
			env := newTestEnv(testService())
			env.Force = tt.force
			step := mustBuild(t, sd.builder(), testService(), jobStep(tt.typ))
			undo, err := step.Do(context.Background(), &env.Env)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Do: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Do error = %v, want %q", err, tt.wantErr)
			}
			if got := strings.Join(sd.Log(), ","); got != tt.wantDo {
				t.Errorf("Do calls = %q, want %q", got, tt.wantDo)
			}
			if tt.wantUndo == "-" {
				if undo != nil {
					t.Fatalf("undo %q, want none", undo.Describe())
				}
				return
			}
			if undo == nil {
				t.Fatal("no undo")
			}
			if _, ok := undo.(executor.Reopener); ok != tt.reopener {
				t.Errorf("undo is Reopener = %v, want %v", ok, tt.reopener)
			}
			if undo.Describe() != tt.describe {
				t.Errorf("Describe = %q, want %q", undo.Describe(), tt.describe)
			}
			n := len(sd.Log())
			sd.noopJobs = map[Op]bool{}
			sd.Fail(OpRestart, "app.service", nil)
			err = rollback(t, undo, &env.Env)
			if tt.undoErr == "" && err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if tt.undoErr != "" && (err == nil || !strings.Contains(err.Error(), tt.undoErr)) {
				t.Fatalf("rollback error = %v, want %q", err, tt.undoErr)
			}
			if got := strings.Join(sd.Log()[n:], ","); got != tt.wantUndo {
				t.Errorf("rollback calls = %q, want %q", got, tt.wantUndo)
			}
		})
	}
}

func TestReopenerBracketsEarlierUndos(t *testing.T) {
	// The executor's order for a stack [backup, restart]: restart's Undo,
	// backup's Undo, then restart's Reopen. This is the reference's
	// rollback flow: stop, restore the unit file, daemon-reload, start,
	// verify health.
	path := filepath.Join(t.TempDir(), "app.service")
	os.WriteFile(path, []byte("old"), 0o644)
	sd := newScripted()
	st := sd.AddUnit("app.service", false)
	st.FragmentPath = path
	sd.SetUnit("app.service", st)
	env := newTestEnv(testService())
	ctx := context.Background()
	b := sd.builder()
	backupUndo, err := mustBuild(t, b, testService(), backupStep("")).Do(ctx, &env.Env)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("new"), 0o644)
	restartUndo, err := mustBuild(t, b, testService(), jobStep(TypeRestart)).Do(ctx, &env.Env)
	if err != nil {
		t.Fatal(err)
	}
	r := restartUndo.(executor.Reopener)
	n := len(sd.Log())
	if err := r.Undo(ctx, &env.Env); err != nil {
		t.Fatal(err)
	}
	if err := backupUndo.Undo(ctx, &env.Env); err != nil {
		t.Fatal(err)
	}
	if err := r.Reopen(ctx, &env.Env); err != nil {
		t.Fatal(err)
	}
	want := "stop app.service,daemon-reload,start app.service,health app.service"
	if got := strings.Join(sd.Log()[n:], ","); got != want {
		t.Errorf("rollback = %q, want %q", got, want)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("unit file = %q after rollback, want old", got)
	}
	if d, ok := restartUndo.(interface{ DescribeReopen() string }); !ok || d.DescribeReopen() != "start app.service, verify health" {
		t.Errorf("DescribeReopen missing or wrong")
	}
}

func TestJobTimeoutArgument(t *testing.T) {
	sd := newScripted()
	sd.AddUnit("other.service", false)
	step := &planner.Step{Name: "r", Type: TypeRestart, Args: map[string]cty.Value{
		"timeout": cty.StringVal("90s"), "unit": cty.StringVal("other.service"),
	}}
	s := mustBuild(t, sd.builder(), testService(), step).(*unitJobStep)
	if s.timeout.String() != "1m30s" || s.unit != "other.service" {
		t.Errorf("timeout, unit = %v, %q", s.timeout, s.unit)
	}
	if _, err := s.Do(context.Background(), &newTestEnv(testService()).Env); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sd.Log(), ","); got != "restart other.service" {
		t.Errorf("calls = %q", got)
	}
}

// TestRestartReadsOnlyItsProof: a restart that succeeds reads the unit's
// load state, whether its file changed, its active state and its
// InvocationID, nothing more. Each property is a round trip through the
// single-threaded manager that a wave of 30 restarts shares (issue 15);
// the rest (SubState, Result) is read only to describe a failure.
func TestRestartReadsOnlyItsProof(t *testing.T) {
	sd := newScripted()
	sd.AddUnit("app.service", true)
	env := newTestEnv(testService())
	step := mustBuild(t, sd.builder(), testService(), jobStep(TypeRestart))
	if _, err := step.Do(context.Background(), &env.Env); err != nil {
		t.Fatal(err)
	}
	want := FieldLoadState | FieldNeedDaemonReload | FieldActiveState | FieldInvocationID
	if sd.read != want {
		t.Errorf("read fields %b, want %b", sd.read, want)
	}
}

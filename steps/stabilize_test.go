package steps

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/planner"
)

func TestStabilize(t *testing.T) {
	// Each flap case changes the unit on the third Status call, inside a
	// window far longer than the test, so only detection ends the step.
	flap := func(change func(st *UnitState)) func(sd *scriptedBackend) {
		return func(sd *scriptedBackend) {
			sd.AddUnit("app.service", false)
			sd.onStatus = func(n int, unit string, f *systemdfake.Systemd) {
				if n == 3 {
					st, _ := f.Unit(unit)
					change(&st)
					f.SetUnit(unit, st)
				}
			}
		}
	}
	tests := []struct {
		name     string
		duration string
		setup    func(sd *scriptedBackend)
		wantErr  string
		wantLog  string // backend log
	}{
		{
			name:     "NRestarts increases",
			duration: "1h",
			setup:    flap(func(st *UnitState) { st.NRestarts++ }),
			wantErr:  "was restarted by systemd during stabilization (NRestarts 0→1): it is crash-looping",
		},
		{
			name:     "unit leaves active",
			duration: "1h",
			setup: flap(func(st *UnitState) {
				st.ActiveState, st.SubState, st.Result = "failed", "failed", "exit-code"
			}),
			wantErr: "became failed (failed), result exit-code during stabilization",
		},
		{
			name:     "new invocation",
			duration: "1h",
			setup:    flap(func(st *UnitState) { st.InvocationID = "ffff" }),
			wantErr:  "started again during stabilization",
		},
		{
			name:     "not active at the start",
			duration: "1h",
			setup: func(sd *scriptedBackend) {
				sd.SetUnit("app.service", UnitState{ActiveState: "activating", SubState: "auto-restart"})
			},
			wantErr: "is activating (auto-restart) at the start of stabilization",
		},
		{
			name:     "steady unit passes and ends with a health check",
			duration: "20ms",
			setup:    func(sd *scriptedBackend) { sd.AddUnit("app.service", false) },
			wantLog:  "health app.service",
		},
		{
			name:     "final health check failure",
			duration: "20ms",
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", false)
				sd.health = []error{errors.New("dial tcp 127.0.0.1:6379: connection refused")}
			},
			wantErr: `after 20ms of stabilization: health check "app.service" failed after 1 attempt: dial tcp`,
			wantLog: "health app.service",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := newScripted()
			tt.setup(sd)
			env := newTestEnv(testService())
			step := mustBuild(t, sd.builder(), testService(), &planner.Step{Name: "settle", Type: TypeStabilize,
				Args: map[string]cty.Value{"duration": cty.StringVal(tt.duration)}})
			undo, err := step.Do(context.Background(), &env.Env)
			if undo != nil {
				t.Errorf("stabilize returned undo %q", undo.Describe())
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Do: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Do error = %v, want %q", err, tt.wantErr)
			}
			if got := strings.Join(sd.Log(), ","); got != tt.wantLog {
				t.Errorf("calls = %q, want %q", got, tt.wantLog)
			}
		})
	}
}

func TestStabilizeStopsOnCancel(t *testing.T) {
	sd := newScripted()
	sd.AddUnit("app.service", false)
	ctx, cancel := context.WithCancel(context.Background())
	sd.onStatus = func(n int, unit string, f *systemdfake.Systemd) {
		if n == 2 {
			cancel()
		}
	}
	step := mustBuild(t, sd.builder(), testService(), &planner.Step{Name: "settle", Type: TypeStabilize,
		Args: map[string]cty.Value{"duration": cty.StringVal("1h")}})
	_, err := step.Do(ctx, &newTestEnv(testService()).Env)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do error = %v, want context.Canceled", err)
	}
}

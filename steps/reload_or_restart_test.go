package steps

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/planner"
)

func reloadOrRestartPlanned() *planner.Step {
	return &planner.Step{Name: "restart", Type: TypeReloadOrRestart, Args: map[string]cty.Value{"timeout": cty.NullVal(cty.String)}}
}

func TestReloadOrRestart(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(sd *scriptedBackend)
		wantErr string
		wantDo  string
		wantLog string
	}{
		{
			name:    "a unit that can reload is reloaded",
			setup:   func(sd *scriptedBackend) { sd.AddUnit("app.service", true) },
			wantDo:  "reload app.service",
			wantLog: "reloaded (MainPID 1001 kept)",
		},
		{
			name:    "a unit that cannot reload is restarted",
			setup:   func(sd *scriptedBackend) { sd.AddUnit("app.service", false) },
			wantDo:  "restart app.service",
			wantLog: "restarted (InvocationID 00000000000000000000000000000001→00000000000000000000000000000002)",
		},
		{
			name: "a unit whose file changed is restarted, not reloaded",
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", true)
				st, _ := sd.Unit("app.service")
				st.NeedDaemonReload = true
				sd.SetUnit("app.service", st)
			},
			wantDo:  "daemon-reload,restart app.service",
			wantLog: "the unit file changed: restarting",
		},
		{
			name: "an inactive unit is restarted even if it can reload",
			setup: func(sd *scriptedBackend) {
				sd.SetUnit("app.service", UnitState{ActiveState: "inactive", CanReload: true})
			},
			wantDo:  "restart app.service",
			wantLog: "restarted (InvocationID none→",
		},
		{
			name: "reload not applicable falls back to restart",
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", true)
				sd.Fail(OpReload, "app.service", fmt.Errorf("reload app.service: %w", ErrNotApplicable))
			},
			wantDo:  "reload app.service,restart app.service",
			wantLog: "reload is not applicable",
		},
		{
			name: "a failed reload is an error, not a restart",
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", true)
				sd.Fail(OpReload, "app.service", &JobError{Op: OpReload, Unit: "app.service", Result: "failed"})
			},
			wantErr: "reload app.service: job failed",
			wantDo:  "reload app.service",
		},
		{
			name: "a reload whose ReloadResult is not success fails",
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", true)
				sd.onStatus = func(n int, unit string, f *systemdfake.Systemd) {
					if n == 2 {
						st, _ := f.Unit(unit)
						st.ReloadResult = "exit-code"
						f.SetUnit(unit, st)
					}
				}
				sd.noopJobs[OpReload] = true
			},
			wantErr: `reload of app.service failed: ReloadResult is "exit-code"`,
			wantDo:  "reload app.service",
		},
		{
			name: "a reload that replaced the main process fails",
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", true)
				sd.onStatus = func(n int, unit string, f *systemdfake.Systemd) {
					if n == 2 {
						st, _ := f.Unit(unit)
						st.MainPID = 4242
						f.SetUnit(unit, st)
					}
				}
			},
			wantErr: "replaced its main process (MainPID 1001→4242)",
			wantDo:  "reload app.service",
		},
		{
			name: "a restart that kept the invocation fails",
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", false)
				sd.noopJobs[OpRestart] = true
			},
			wantErr: "did not take effect",
			wantDo:  "restart app.service",
		},
		{
			name: "a restart that left the unit failed fails",
			setup: func(sd *scriptedBackend) {
				sd.AddUnit("app.service", false)
				sd.onStatus = func(n int, unit string, f *systemdfake.Systemd) {
					if n == 2 {
						st, _ := f.Unit(unit)
						st.ActiveState, st.SubState, st.Result = "failed", "failed", "exit-code"
						f.SetUnit(unit, st)
					}
				}
			},
			wantErr: "app.service is failed (failed), result exit-code after restart",
			wantDo:  "restart app.service",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := newScripted()
			tt.setup(sd)
			env := newTestEnv(testService())
			undo, err := mustBuild(t, sd.builder(), testService(), reloadOrRestartPlanned()).Do(context.Background(), &env.Env)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Do: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Do error = %v, want %q", err, tt.wantErr)
			}
			if got := strings.Join(sd.Log(), ","); got != tt.wantDo {
				t.Errorf("calls = %q, want %q", got, tt.wantDo)
			}
			if !strings.Contains(env.output(), tt.wantLog) {
				t.Errorf("log = %q, want %q", env.output(), tt.wantLog)
			}
			// Whether the job worked or not, the rollback stops the unit
			// and brings the old version up.
			if _, ok := undo.(executor.Reopener); !ok || undo.Describe() != "stop app.service" {
				t.Errorf("undo = %#v, want the stop/start Reopener", undo)
			}
		})
	}
}

package systemdfake

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/rollout-sh/rollout/internal/systemdapi"
)

// TestFakeSystemdMatchesSystemd checks the fake against the behaviour the
// real-manager tests (steps/systemd_test.go) establish.
func TestFakeSystemdMatchesSystemd(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		canReload  bool
		op         systemdapi.Op
		stopFirst  bool
		wantErr    error
		wantResult string // systemdapi.JobError result
		newProcess bool
		wantActive string
	}{
		{"start active is a no-op", false, systemdapi.OpStart, false, nil, "", false, "active"},
		{"start inactive", false, systemdapi.OpStart, true, nil, "", true, "active"},
		{"restart", false, systemdapi.OpRestart, false, nil, "", true, "active"},
		{"stop", false, systemdapi.OpStop, false, nil, "", false, "inactive"},
		{"reload", true, systemdapi.OpReload, false, nil, "", false, "active"},
		{"reload without ExecReload", false, systemdapi.OpReload, false, systemdapi.ErrNotApplicable, "", false, "active"},
		{"reload inactive", true, systemdapi.OpReload, true, nil, "invalid", false, "inactive"},
		{"reload-or-restart reloads", true, systemdapi.OpReloadOrRestart, false, nil, "", false, "active"},
		{"reload-or-restart restarts", false, systemdapi.OpReloadOrRestart, false, nil, "", true, "active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			f.AddUnit("a.service", tt.canReload)
			if tt.stopFirst {
				if err := f.Do(ctx, systemdapi.OpStop, "a.service"); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := f.Unit("a.service")
			err := f.Do(ctx, tt.op, "a.service")
			var je *systemdapi.JobError
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error = %v, want %v", err, tt.wantErr)
				}
			case tt.wantResult != "":
				if !errors.As(err, &je) || je.Result != tt.wantResult {
					t.Errorf("error = %v, want job result %s", err, tt.wantResult)
				}
			case err != nil:
				t.Errorf("error = %v", err)
			}
			after, _ := f.Unit("a.service")
			changed := after.InvocationID != before.InvocationID
			if changed != tt.newProcess || (tt.newProcess && after.MainPID == before.MainPID) {
				t.Errorf("InvocationID %s→%s MainPID %d→%d, new process want %v",
					before.InvocationID, after.InvocationID, before.MainPID, after.MainPID, tt.newProcess)
			}
			if after.ActiveState != tt.wantActive {
				t.Errorf("ActiveState = %s, want %s", after.ActiveState, tt.wantActive)
			}
		})
	}
}

func TestFakeSystemdScripting(t *testing.T) {
	ctx := context.Background()
	f := New()
	f.AddUnit("a.service", false)
	if err := f.Do(ctx, systemdapi.OpStart, "missing.service"); !errors.Is(err, systemdapi.ErrNoSuchUnit) {
		t.Errorf("missing unit: %v", err)
	}
	if st, err := f.Status(ctx, "missing.service"); err != nil || st.Loaded() == nil {
		t.Errorf("missing unit status: %+v, %v", st, err)
	}
	failed := &systemdapi.JobError{Op: systemdapi.OpRestart, Unit: "a.service", Result: "failed"}
	f.Fail(systemdapi.OpRestart, "a.service", failed)
	if err := f.Do(ctx, systemdapi.OpRestart, "a.service"); !errors.Is(err, failed) {
		t.Errorf("scripted failure: %v", err)
	}
	f.Fail(systemdapi.OpRestart, "a.service", nil)
	if err := f.Do(ctx, systemdapi.OpRestart, "a.service"); err != nil {
		t.Errorf("after clearing the failure: %v", err)
	}
	st, _ := f.Unit("a.service")
	st.NeedDaemonReload = true
	f.SetUnit("a.service", st)
	if err := f.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Unit("a.service"); st.NeedDaemonReload || f.DaemonReloads() != 1 {
		t.Errorf("after daemon-reload: NeedDaemonReload %v, reloads %d", st.NeedDaemonReload, f.DaemonReloads())
	}
	want := []Call{{systemdapi.OpStart, "missing.service"}, {StatusOp, "missing.service"}, {systemdapi.OpRestart, "a.service"}, {systemdapi.OpRestart, "a.service"}, {DaemonReloadOp, ""}}
	got := f.Calls()
	if len(got) != len(want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d = %v, want %v", i, got[i], want[i])
		}
	}
	f.Close()
	if err := f.Do(ctx, systemdapi.OpStart, "a.service"); err == nil {
		t.Error("Do after Close succeeded")
	}
}

// TestFakeSystemdConcurrent is for -race: the fake is shared by parallel
// steps.
func TestFakeSystemdConcurrent(t *testing.T) {
	ctx := context.Background()
	f := New()
	f.AddUnit("a.service", true)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				_ = f.Do(ctx, []systemdapi.Op{systemdapi.OpRestart, systemdapi.OpReload, systemdapi.OpStart}[i%3], "a.service")
				_, _ = f.Status(ctx, "a.service")
			}
		}()
	}
	wg.Wait()
	if n := len(f.Calls()); n != 8*50*2 {
		t.Errorf("%d calls recorded, want %d", n, 8*50*2)
	}
}

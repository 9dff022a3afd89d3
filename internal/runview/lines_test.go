package runview

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestIrreversibleRollbackIsSaid: a rollback that left a migration applied
// is said on its line and again at the end, where an operator looks.
func TestIrreversibleRollbackIsSaid(t *testing.T) {
	t.Setenv("TZ", "UTC")
	at := time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)
	evs := []executor.Event{
		{Time: at, Event: executor.RunStart, RunID: "r1", Plan: "platform", Message: "1 service"},
		{Time: at, Event: executor.ServiceRestartStart, Service: "sso.api", Unit: "sso-api.service"},
		{Time: at, Event: executor.StepSuccess, Service: "sso.api", Step: "migrate", DurationMS: 2000},
		{Time: at, Event: executor.StepFailed, Service: "sso.api", Step: "verify", DurationMS: 3000, Error: "unhealthy"},
		{Time: at, Event: executor.RollbackStart, Service: "sso.api"},
		{Time: at, Event: executor.RollbackSuccess, Service: "sso.api", DurationMS: 1000, Irreversible: []string{"migrate"}},
		{Time: at, Event: executor.ServiceRestartFailed, Service: "sso.api", DurationMS: 6000, Error: "unhealthy"},
		{Time: at, Event: executor.RunFailed, RunID: "r1", DurationMS: 6000, Error: "1 of 1 failed (1 rolled back)"},
	}
	res := executor.Result{RunID: "r1", Failed: []string{"sso.api"}, RolledBack: []string{"sso.api"},
		Irreversible: map[string][]string{"sso.api": {"migrate"}}, Duration: 6 * time.Second}
	plan := &planner.Plan{Name: "platform", Services: []*planner.Service{{Name: "sso.api"}}}

	var out bytes.Buffer
	p := NewPrinter(&out, &out, false)
	for _, e := range evs {
		p.Observe(e)
	}
	p.Summary(plan, res, "/var/log/rollout/events.jsonl")
	golden(t, "irreversible.txt", out.Bytes())

	var live bytes.Buffer
	v := NewLive(&live, plan, false, func() time.Time { return at })
	for _, e := range evs {
		v.Observe(e)
	}
	v.Close()
	var table bytes.Buffer
	v.SummaryTable(&table, plan)
	golden(t, "irreversible-live-table.txt", table.Bytes())
}

// TestCanaryIsShown: the canary's phases have lines of their own, the
// live view a row while the canary is observed or waits for a person, and
// a canary rolled back with its canary counts as failed, not done.
func TestCanaryIsShown(t *testing.T) {
	t.Setenv("TZ", "UTC")
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	evs := []executor.Event{
		{Time: at, Event: executor.RunStart, RunID: "r1", Plan: "canary", Message: "3 services"},
		{Time: at, Event: executor.ServiceRestartStart, Service: "api:1", Unit: "api@1.service"},
		{Time: at, Event: executor.ServiceRestartSuccess, Service: "api:1", DurationMS: 2000, Message: "canary: held until promoted"},
		{Time: at, Event: executor.CanaryStart, Service: "api", Message: "observing api:1 for 5m0s, every 10s: health of api:1; then waiting up to 10m0s for `rollout promote r1`"},
		{Time: at.Add(5 * time.Minute), Event: executor.CanaryWaiting, Service: "api", Message: "waiting up to 10m0s for a person: rollout promote r1 (or --abort)"},
	}
	plan := &planner.Plan{Name: "canary", Services: []*planner.Service{{Name: "api:1"}, {Name: "api:2"}, {Name: "api:3"}}}
	var live bytes.Buffer
	now := at.Add(5*time.Minute + 12*time.Second)
	v := NewLive(&live, plan, false, func() time.Time { return now })
	for _, e := range evs {
		v.Observe(e)
	}
	frame := v.frame(now)
	if !bytes.Contains([]byte(frame), []byte("canary: awaiting promotion")) || !bytes.Contains([]byte(frame), []byte("12s")) {
		t.Errorf("the live area has no row for the waiting canary:\n%s", frame)
	}
	rest := []executor.Event{
		{Time: now, Event: executor.CanaryFailed, Service: "api", Error: "rejected by bob", Message: "rolling back api:1; api:2, api:3 not touched"},
		{Time: now, Event: executor.RollbackStart, Service: "api:1"},
		{Time: now, Event: executor.RollbackSuccess, Service: "api:1", DurationMS: 1500},
		{Time: now, Event: executor.ServiceRestartFailed, Service: "api:1", Error: "canary failed: rejected by bob", Message: "rolled back"},
		{Time: now, Event: executor.ServiceSkipped, Service: "api:2", Cause: "api", Message: "the canary of api failed: rejected by bob"},
		{Time: now, Event: executor.ServiceSkipped, Service: "api:3", Cause: "api", Message: "the canary of api failed: rejected by bob"},
		{Time: now, Event: executor.RunFailed, RunID: "r1", Error: "1 of 3 failed (1 rolled back), 0 succeeded, 2 skipped"},
	}
	for _, e := range rest {
		v.Observe(e)
	}
	v.Close()
	if frame := v.frame(now); !bytes.HasPrefix([]byte(frame), []byte("0 done, 1 failed, 2 skipped, 0 in flight, 0 remaining\n")) {
		t.Errorf("counts after the canary failed:\n%s", frame)
	}
	var out bytes.Buffer
	p := NewPrinter(&out, &out, false)
	for _, e := range append(evs, rest...) {
		p.Observe(e)
	}
	golden(t, "canary.txt", out.Bytes())
}

// TestPhaseIsShown: a long step's phase (a blue-green switch) is on the
// live view's row of the service and has a line of its own.
func TestPhaseIsShown(t *testing.T) {
	t.Setenv("TZ", "UTC")
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	evs := []executor.Event{
		{Time: at, Event: executor.ServiceRestartStart, Service: "x-bg", Unit: "x@.service"},
		{Time: at, Event: executor.StepStart, Service: "x-bg", Step: "switch"},
		{Time: at, Event: executor.StepPhase, Service: "x-bg", Step: "switch", Message: "switch blue → green"},
	}
	plan := &planner.Plan{Name: "bg", Services: []*planner.Service{{Name: "x-bg"}}}
	var live bytes.Buffer
	v := NewLive(&live, plan, false, func() time.Time { return at })
	for _, e := range evs {
		v.Observe(e)
	}
	if frame := v.frame(at.Add(time.Second)); !bytes.Contains([]byte(frame), []byte("switch › switch blue → green")) {
		t.Errorf("the live row does not show the phase:\n%s", frame)
	}
	v.Close()
	if got, want := Line(evs[2]), "x-bg: switch › switch blue → green"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
}

// TestFleetInstancesNameTheirHost: the live view and its summary table
// name each instance with its host (SERVICE@HOST), so two instances of one
// service on two hosts are told apart while they run and after.
func TestFleetInstancesNameTheirHost(t *testing.T) {
	at := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	evs := []executor.Event{
		{Time: at, Event: executor.RunStart, RunID: "r2", Plan: "fleet", Message: "2 services"},
		{Time: at, Event: executor.ServiceRestartStart, Service: "api@app1", Host: "app1", Unit: "api.service"},
		{Time: at, Event: executor.ServiceRestartStart, Service: "api@app2", Host: "app2", Unit: "api.service"},
		{Time: at, Event: executor.ServiceRestartSuccess, Service: "api@app1", Host: "app1", DurationMS: 500},
		{Time: at, Event: executor.ServiceRestartFailed, Service: "api@app2", Host: "app2", DurationMS: 700, Error: "host app2 unreachable over ssh"},
	}
	plan := &planner.Plan{Name: "fleet", Services: []*planner.Service{
		{Name: "api@app1", Service: "api", Host: &planner.Host{Name: "app1"}},
		{Name: "api@app2", Service: "api", Host: &planner.Host{Name: "app2"}},
	}}
	var live bytes.Buffer
	v := NewLive(&live, plan, false, func() time.Time { return at })
	for _, e := range evs[:3] {
		v.Observe(e)
	}
	frame := v.frame(at)
	for _, e := range evs[3:] {
		v.Observe(e)
	}
	v.Close()
	var table bytes.Buffer
	v.SummaryTable(&table, plan)
	for _, inst := range []string{"api@app1", "api@app2"} {
		if !bytes.Contains([]byte(frame), []byte(inst)) {
			t.Errorf("the live frame does not show %s:\n%s", inst, frame)
		}
		if !bytes.Contains(table.Bytes(), []byte(inst)) {
			t.Errorf("the summary table does not show %s:\n%s", inst, table.String())
		}
	}
	if !bytes.Contains(live.Bytes(), []byte("app2 unreachable")) {
		t.Errorf("the failure naming the host is not shown:\n%s", live.String())
	}
}

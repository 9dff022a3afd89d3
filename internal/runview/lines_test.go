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

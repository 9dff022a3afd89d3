package status

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

func plan(n int) *planner.Plan {
	p := &planner.Plan{Name: "p"}
	for i := range n {
		p.Services = append(p.Services, &planner.Service{
			Name: fmt.Sprintf("s%d", i), Unit: fmt.Sprintf("s%d.service", i),
			Health: &planner.Health{Kind: "http", URL: "http://127.0.0.1:1/health", Timeout: time.Hour},
		})
	}
	return p
}

func backend(p *planner.Plan) *systemdfake.Systemd {
	sd := systemdfake.New()
	for _, s := range p.Services {
		sd.AddUnit(s.Unit, false)
	}
	return sd
}

// collectWithin fails the test when Collect has not returned after a
// minute: a status that waits on a hanging check would hang here.
func collectWithin(t *testing.T, p *planner.Plan, opts Options) Report {
	t.Helper()
	done := make(chan Report, 1)
	go func() { done <- Collect(context.Background(), p, time.Now(), opts) }()
	select {
	case r := <-done:
		return r
	case <-time.After(time.Minute):
		t.Fatal("Collect did not return: it waits on a hanging health check")
		return Report{}
	}
}

// A check that never answers is cut off by the total timeout, whatever
// its own timeout, and reported as failing.
func TestCollectBoundedByTimeout(t *testing.T) {
	p := plan(3)
	hang := func(ctx context.Context, h *planner.Health, unit string, sd steps.Backend) error {
		if unit == "s1.service" {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	r := collectWithin(t, p, Options{Systemd: backend(p), Probe: hang, Timeout: 100 * time.Millisecond, Release: func(string) string { return "" }})
	if r.Healthy {
		t.Fatal("report healthy with a hanging check")
	}
	for _, s := range r.Services {
		want := s.Name != "s1"
		if s.Healthy != want || s.Health.OK != want {
			t.Errorf("%s: healthy %v, health %+v; want %v", s.Name, s.Healthy, s.Health, want)
		}
	}
	if got := r.Services[1].Health.Error; got != "not finished: status took longer than 100ms" {
		t.Errorf("s1 error %q", got)
	}
}

// At most Concurrency checks run at once.
func TestCollectBoundedConcurrency(t *testing.T) {
	p := plan(12)
	var running, most atomic.Int32
	var mu sync.Mutex
	probe := func(ctx context.Context, h *planner.Health, unit string, sd steps.Backend) error {
		n := running.Add(1)
		mu.Lock()
		if n > most.Load() {
			most.Store(n)
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		return nil
	}
	r := collectWithin(t, p, Options{Systemd: backend(p), Probe: probe, Concurrency: 3, Release: func(string) string { return "" }})
	if !r.Healthy {
		t.Fatalf("report %+v", r)
	}
	if m := most.Load(); m > 3 || m < 1 {
		t.Errorf("%d checks ran at once, want at most 3", m)
	}
}

func TestCollectUnitProblems(t *testing.T) {
	p := plan(3)
	sd := systemdfake.New()
	sd.AddUnit("s0.service", false)
	sd.Fail(systemdfake.StatusOp, "s2.service", errors.New("bus gone"))
	ok := func(context.Context, *planner.Health, string, steps.Backend) error { return nil }
	r := collectWithin(t, p, Options{Systemd: sd, Probe: ok, Release: func(string) string { return "" }})
	got := []string{}
	for _, s := range r.Services {
		got = append(got, fmt.Sprintf("%s %v %s %q", s.Name, s.Healthy, s.LoadState, s.Error))
	}
	want := []string{`s0 true loaded ""`, `s1 false not-found ""`, `s2 false  "bus gone"`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestLastRuns(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 11, 30, 0, 0, s, 0, time.UTC) }
	evs := []executor.Event{
		{Time: at(0), RunID: "r1", Event: executor.RunStart, Plan: "p"},
		{Time: at(1), RunID: "r1", Event: executor.ServiceRestartSuccess, Service: "a"},
		{Time: at(2), RunID: "r1", Event: executor.ServiceRestartFailed, Service: "b"},
		{Time: at(3), RunID: "r1", Event: executor.RollbackFailed, Service: "b"},
		{Time: at(4), RunID: "r1", Event: executor.ServiceSkipped, Service: "c"},
		{Time: at(5), RunID: "r1", Event: executor.RunFailed},
		{Time: at(6), RunID: "r2", Event: executor.RunStart, Plan: "p"},
		{Time: at(7), RunID: "r2", Event: executor.StepStart, Service: "a"},
		{Time: at(8), RunID: "r2", Event: executor.NotifyFailed, Service: "c"},
	}
	got := lastRuns(evs)
	want := map[string]string{"a": "r2 unfinished", "b": "r1 ROLLBACK FAILED", "c": "r1 skipped"}
	for name, w := range want {
		if r := got[name]; r == nil || r.RunID+" "+r.Result != w {
			t.Errorf("%s: %+v, want %s", name, r, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d services, want %d", len(got), len(want))
	}
}

package steps

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/busdial"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/planner"
)

// lateStep delays a step before it runs, as a service whose goroutine the
// Go scheduler or a slow journal fsync holds back; it takes a turn as the
// step it wraps does.
type lateStep struct {
	executor.Step
	delay time.Duration
}

func (lateStep) TakesTurn() {}

func (s lateStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	time.Sleep(s.delay)
	return s.Step.Do(ctx, env)
}

// TestRestartJobsReachSystemdInScheduleOrder: four services start at once
// on a real manager; "head" heads the longest chain, so the scheduler
// starts it first, but its goroutine reaches systemd 10 ms after the
// others'. Its restart job must still be the first the manager creates
// (the job ids of JobRemoved count up in creation order): the manager
// runs a burst of jobs in the order they arrive. Seen failing with
// WaitTurn returning at once: head's job was created last.
func TestRestartJobsReachSystemdInScheduleOrder(t *testing.T) {
	m := systemdtest.Start(t)
	names := []string{"turn-head.service", "turn-a.service", "turn-b.service", "turn-c.service", "turn-tail.service"}
	for _, n := range names {
		m.WriteUnitFile(t, n, systemdtest.HTTPServiceUnit(n, m.Testsvc(t), systemdtest.FreePort(t), t.TempDir(), systemdtest.UnitOptions{}))
	}
	m.DaemonReload(t)
	ctx := t.Context()
	sd, err := Connect(ctx, ConnectOptions{Address: m.BusAddress, JobTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	for _, n := range names {
		if err := sd.Do(ctx, OpStart, n); err != nil {
			t.Fatal(err)
		}
	}

	// Every job the manager creates from now on, by id.
	watch, err := busdial.Dial(ctx, m.BusAddress)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Close() })
	if err := watch.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.systemd1.Manager"), dbus.WithMatchMember("JobRemoved")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 64)
	watch.Signal(sigs)
	var mu sync.Mutex
	jobs := map[uint32]string{}
	go func() {
		for s := range sigs {
			if len(s.Body) >= 3 {
				id, _ := s.Body[0].(uint32)
				unit, _ := s.Body[2].(string)
				mu.Lock()
				jobs[id] = unit
				mu.Unlock()
			}
		}
	}()

	plan := &planner.Plan{Name: "turns"}
	for _, n := range names {
		svc := &planner.Service{Name: n, Unit: n, Steps: []*planner.Step{{Name: "restart", Type: TypeRestart}}}
		if n == "turn-tail.service" {
			svc.Needs = []string{"turn-head.service"}
		}
		plan.Services = append(plan.Services, svc)
		plan.Order = append(plan.Order, n)
	}
	b := &builder{sd: sd, checkHealth: CheckHealth, pollInterval: 50 * time.Millisecond}
	build := func(svc *planner.Service, st *planner.Step) (executor.Step, error) {
		step := mustBuild(t, b, svc, st)
		if svc.Name == "turn-head.service" {
			return lateStep{Step: step, delay: 10 * time.Millisecond}, nil
		}
		return step, nil
	}
	// The order, not the bound, is under test: on a loaded machine head's
	// 10 ms and its reads can outlast the default 20 ms without progress.
	res, err := executor.Run(ctx, plan, executor.Options{Build: build, RunID: "turns", TurnWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Succeeded) != len(names) {
		t.Fatalf("succeeded %v, want all %d", res.Succeeded, len(names))
	}
	var created []string
	deadline := time.Now().Add(5 * time.Second)
	for len(created) < len(names) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		ids := make([]uint32, 0, len(jobs))
		for id := range jobs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		created = created[:0]
		for _, id := range ids {
			created = append(created, jobs[id])
		}
		mu.Unlock()
	}
	if len(created) < 4 || created[0] != "turn-head.service" {
		t.Errorf("the manager created the restart jobs in the order %v; want turn-head.service's first (the scheduler started it first)", created)
	}
}

package executor

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// turnedStep is a first step that enqueues a job: it takes a turn.
type turnedStep struct{ fakeStep }

func (turnedStep) TakesTurn() {}

// TestServicesStartedTogetherEnqueueInScheduleOrder: six services start
// at once, and the ones the scheduler starts first reach their step's
// queue last (each sleeps longer than the next, as goroutines delayed by
// the journal's fsyncs or the manager's replies do). With turns, the
// queue still receives them in the scheduler's order: the deepest chains'
// heads (c, a), then the rest in plan order. Without (WaitTurn returning
// at once) it receives them in the order they arrive.
func TestServicesStartedTogetherEnqueueInScheduleOrder(t *testing.T) {
	plan := makePlan(specs("x", "y", "a", "b: a", "c", "d: c", "e: d")...)
	starters := []string{"c", "a", "x", "y"} // the schedule's order of the first wave
	var mu sync.Mutex
	var queue []string
	build := func(svc *planner.Service, st *planner.Step) (Step, error) {
		delay := 0
		if k := slices.Index(starters, svc.Name); k >= 0 {
			delay = len(starters) - k
		}
		return turnedStep{fakeStep{key: svc.Name, do: func(ctx context.Context, env *Env) (Undo, error) {
			time.Sleep(time.Duration(delay) * 15 * time.Millisecond)
			done := WaitTurn(ctx)
			mu.Lock()
			queue = append(queue, svc.Name)
			mu.Unlock()
			done()
			return nil, nil
		}}}, nil
	}
	res, _ := run(t, context.Background(), plan, Options{Build: build, TurnWait: time.Hour}) // the order, not the bound, is under test
	if len(res.Succeeded) != 7 {
		t.Fatalf("succeeded %v, want all 7", res.Succeeded)
	}
	if got := queue[:4]; !slices.Equal(got, starters) {
		t.Errorf("the first wave enqueued in the order %v, want the schedule's %v", got, starters)
	}
}

// TestTurnIsNotHeldByAStepThatEnqueuesNothing: a service whose first step
// takes no turn (a drain, a command) never holds back the services
// started after it, even while that step runs.
func TestTurnIsNotHeldByAStepThatEnqueuesNothing(t *testing.T) {
	plan := makePlan(specs("drained", "other")...)
	release := make(chan struct{})
	entered := make(chan struct{})
	build := func(svc *planner.Service, st *planner.Step) (Step, error) {
		if svc.Name == "drained" {
			return fakeStep{key: svc.Name, do: func(ctx context.Context, env *Env) (Undo, error) {
				close(entered)
				<-release
				return nil, nil
			}}, nil
		}
		return turnedStep{fakeStep{key: svc.Name, do: func(ctx context.Context, env *Env) (Undo, error) {
			if err := waitOrFail(ctx, entered); err != nil {
				return nil, err
			}
			WaitTurn(ctx)()
			close(release)
			return nil, nil
		}}}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, _ := run(t, ctx, plan, Options{Build: build, TurnWait: time.Hour}) // a wait for the drain would hang the test
	if len(res.Succeeded) != 2 {
		t.Fatalf("succeeded %v, want both", res.Succeeded)
	}
}

// TestWaitTurnIsBounded: a service that never reaches its queue (its
// step blocks before, as on a slow daemon-reload) holds the next one
// back for the run's TurnWait at most.
func TestWaitTurnIsBounded(t *testing.T) {
	plan := makePlan(specs("slow", "next")...)
	release := make(chan struct{})
	build := func(svc *planner.Service, st *planner.Step) (Step, error) {
		if svc.Name == "slow" {
			return turnedStep{fakeStep{key: svc.Name, do: func(ctx context.Context, env *Env) (Undo, error) {
				<-release
				WaitTurn(ctx)()
				return nil, nil
			}}}, nil
		}
		return turnedStep{fakeStep{key: svc.Name, do: func(ctx context.Context, env *Env) (Undo, error) {
			WaitTurn(ctx)()
			close(release)
			return nil, nil
		}}}, nil
	}
	res, _ := run(t, context.Background(), plan, Options{Build: build, TurnWait: 10 * time.Millisecond})
	if len(res.Succeeded) != 2 {
		t.Fatalf("succeeded %v, want both", res.Succeeded)
	}
}

// TestTurnQueue: a turn waits only for the open turns opened before it
// on its own machine; closed turns leave the queue's front.
func TestTurnQueue(t *testing.T) {
	ts := newTurns(0)
	a, b, c := ts.take(-1), ts.take(-1), ts.take(-1)
	remote := ts.take(0)
	if got := ts.earlier(c); !slices.Equal(got, []*turn{a, b}) {
		t.Fatalf("earlier(c) = %v, want [a b]", got)
	}
	if got := ts.earlier(remote); len(got) != 0 {
		t.Errorf("a turn on another machine waits for %d turns, want none", len(got))
	}
	b.close()
	if got := ts.earlier(c); !slices.Equal(got, []*turn{a}) {
		t.Errorf("after b closed, earlier(c) = %v, want [a]", got)
	}
	a.close()
	a.close() // twice is fine
	if got := ts.earlier(c); len(got) != 0 {
		t.Errorf("after a and b closed, earlier(c) = %v, want none", got)
	}
	if q := ts.queues[-1]; len(q.turns) != 1 || q.base != 2 {
		t.Errorf("the queue holds %d turns from seq %d, want only c (seq 2)", len(q.turns), q.base)
	}
	d := ts.take(-1)
	if got := ts.earlier(d); !slices.Equal(got, []*turn{c}) {
		t.Errorf("earlier(d) = %v, want [c]", got)
	}
	c.close()
	if got := ts.earlier(c); got != nil {
		t.Errorf("a closed turn waits for %v", got)
	}
}

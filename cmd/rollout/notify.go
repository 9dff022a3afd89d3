package main

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/notify"
	"github.com/rollout-sh/rollout/planner"
)

// runNotifier sends a run's events to the plan's notify blocks. Every
// command that runs a plan (run, and later rollback) wraps its events log
// with sink() and calls finish() after executor.Run returns, before the
// events log is closed.
type runNotifier struct {
	n      *notify.Notifier
	events executor.Sink

	mu     sync.Mutex
	failed []executor.Event
}

// startNotifier starts delivering plan's notifications; NOTIFY_FAILED
// events go to the events log. With no notify block it does nothing.
func startNotifier(plan *planner.Plan, events executor.Sink, opts notify.Options) *runNotifier {
	rn := &runNotifier{events: events}
	if len(plan.Notifications) == 0 {
		return rn
	}
	opts.Failed = func(ev executor.Event) {
		// A lost NOTIFY_FAILED line is not worth failing anything for:
		// finish() prints it on stderr as well.
		_ = events.Write(ev)
		rn.mu.Lock()
		rn.failed = append(rn.failed, ev)
		rn.mu.Unlock()
	}
	rn.n = notify.New(plan.Notifications, opts)
	return rn
}

// sink is the events log the executor writes to: every event is recorded,
// then handed to the notifier without waiting.
func (rn *runNotifier) sink() executor.Sink {
	if rn.n == nil {
		return rn.events
	}
	return notify.Sink{Sink: rn.events, Notifier: rn.n}
}

// finish waits for the last notifications, at most notify.DefaultFlushTimeout,
// and says on errOut which ones were not delivered. It never changes the
// run's exit status.
func (rn *runNotifier) finish(errOut io.Writer) {
	if rn.n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notify.DefaultFlushTimeout)
	defer cancel()
	rn.n.Close(ctx)
	rn.mu.Lock()
	defer rn.mu.Unlock()
	for _, ev := range rn.failed {
		fmt.Fprintf(errOut, "rollout: %s: %s\n", ev.Message, ev.Error)
	}
}

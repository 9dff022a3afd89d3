package executor

import (
	"context"
	"sync"
	"time"
)

// Services that start together enqueue their first job in a queue they
// share: one systemd manager runs restarts one after another, in the
// order their requests arrive (on the benchmark's 2-CPU machine a burst
// of 30 restarts starts one process every ~10 ms, docs/performance.md).
// The scheduler starts the heaviest remaining path first, but the
// services' goroutines reach the manager in whatever order the Go
// scheduler, the journal's fsyncs and the manager's replies let them: the
// head of the longest chain could be restarted last of its wave.
//
// A turn restores the scheduler's order. The coordinator opens one per
// service, in the order it starts them; a step that enqueues work in the
// shared queue first waits for the turns opened before its own on the
// same machine to close (WaitTurn). A turn closes when its service has
// enqueued its job (the manager replied), when its first step ends, or at
// once when that step takes no turn (a drain, a command). The wait costs
// nothing while the earlier services are sending (go-systemd sends one
// job request at a time anyway); an earlier service that has not reached
// the queue is waited for at most the turn wait (20 ms), so a daemon-reload or a slow
// fsync delays its own service, not the wave.

// Turned is an optional interface of a Step: the step enqueues a job in a
// queue that services share (systemd's) early in its Do, and calls
// WaitTurn just before it does. Only a service whose first step is
// Turned keeps its turn open past the step's start.
type Turned interface {
	TakesTurn()
}

// defaultTurnWait bounds how long a service waits, without any earlier
// turn closing, for the services started before it to reach the queue,
// unless the run's Options.TurnWait says otherwise.
const defaultTurnWait = 20 * time.Millisecond

// turns are the turns of a run, per machine (a host's index, -1 for the
// local machine), in the order they were opened.
type turns struct {
	wait   time.Duration // Options.TurnWait, or defaultTurnWait
	mu     sync.Mutex
	queues map[int]*turnQueue
}

// turnQueue is one machine's turns from the oldest still open on: closed
// turns leave from its front, so closing is O(1) however many services a
// wave starts.
type turnQueue struct {
	turns []*turn
	base  int // the seq of turns[0]
	next  int // the seq of the next turn
}

type turn struct {
	ts     *turns
	q      *turnQueue
	seq    int
	closed bool // under ts.mu
	done   chan struct{}
	once   sync.Once
	// sending is closed once the turn's service has waited its turn and
	// sends its request.
	sending     chan struct{}
	sendingOnce sync.Once
}

func newTurns(wait time.Duration) *turns {
	if wait <= 0 {
		wait = defaultTurnWait
	}
	return &turns{wait: wait, queues: map[int]*turnQueue{}}
}

// take opens the next turn on machine.
func (ts *turns) take(machine int) *turn {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	q := ts.queues[machine]
	if q == nil {
		q = &turnQueue{}
		ts.queues[machine] = q
	}
	t := &turn{ts: ts, q: q, seq: q.next, done: make(chan struct{}), sending: make(chan struct{})}
	q.next++
	q.turns = append(q.turns, t)
	return t
}

// earlier is the turns still open on t's machine that were opened before
// t; nil once t is closed.
func (ts *turns) earlier(t *turn) []*turn {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.closed {
		return nil
	}
	var out []*turn
	for _, o := range t.q.turns[:t.seq-t.q.base] {
		if !o.closed {
			out = append(out, o)
		}
	}
	return out
}

// close ends t; it is safe to call more than once and on nil.
func (t *turn) close() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		t.ts.mu.Lock()
		t.closed = true
		q := t.q
		for len(q.turns) > 0 && q.turns[0].closed {
			q.turns[0] = nil
			q.turns = q.turns[1:]
			q.base++
		}
		t.ts.mu.Unlock()
		close(t.done)
	})
}

type turnKey struct{}

func withTurn(ctx context.Context, t *turn) context.Context {
	if t == nil {
		return ctx
	}
	return context.WithValue(ctx, turnKey{}, t)
}

// WaitTurn waits until the services started before this one on the same
// machine have enqueued their first job (or the run's TurnWait has
// passed without progress, or ctx is done), and returns the function that
// ends this service's turn: call it once the job is enqueued. Outside a run's first step, or once the
// turn has ended, it returns at once.
func WaitTurn(ctx context.Context) (done func()) {
	t, _ := ctx.Value(turnKey{}).(*turn)
	if t == nil {
		return func() {}
	}
	if earlier := t.ts.earlier(t); len(earlier) > 0 {
		// The earlier turns close one after another as the manager
		// answers them. One that is sending is waited for however long
		// the manager takes (the requests go one at a time anyway); the
		// wait for one that has not reached its queue yet is bounded.
		timer := time.NewTimer(t.ts.wait)
		defer timer.Stop()
	wait:
		for _, e := range earlier {
			select {
			case <-e.done:
			case <-e.sending:
				select {
				case <-e.done:
				case <-ctx.Done():
					break wait
				}
			case <-timer.C:
				break wait
			case <-ctx.Done():
				break wait
			}
			timer.Reset(t.ts.wait) // no stale expiry since Go 1.23
		}
	}
	t.sendingOnce.Do(func() { close(t.sending) })
	return t.close
}

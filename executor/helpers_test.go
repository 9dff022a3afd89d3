package executor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// svcSpec describes a service for makePlan: "name" or "name: dep dep",
// with steps (default: one step "restart").
type svcSpec struct {
	def   string
	typ   string
	tags  []string
	steps []string
}

// makePlan builds a plan whose Services and Order follow specs as given
// (specs must list dependencies first).
func makePlan(specs ...svcSpec) *planner.Plan {
	p := &planner.Plan{Name: "test"}
	for _, s := range specs {
		name, deps, _ := strings.Cut(s.def, ":")
		svc := &planner.Service{
			Name:   strings.TrimSpace(name),
			Unit:   strings.TrimSpace(name) + ".service",
			Type:   s.typ,
			Tags:   s.tags,
			Needs:  strings.Fields(deps),
			Health: &planner.Health{Kind: "http", URL: "http://localhost:3001/health"},
		}
		svc.DependsOn = svc.Needs
		steps := s.steps
		if steps == nil {
			steps = []string{"restart"}
		}
		for _, st := range steps {
			svc.Steps = append(svc.Steps, &planner.Step{Name: st, Type: st})
		}
		p.Services = append(p.Services, svc)
		p.Order = append(p.Order, svc.Name)
	}
	return p
}

func specs(defs ...string) []svcSpec {
	out := make([]svcSpec, len(defs))
	for i, d := range defs {
		out[i] = svcSpec{def: d}
	}
	return out
}

// recorder is a log shared by fake steps, undos and the observer, in the
// order things happened.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// doFunc scripts one step of one service.
type doFunc func(ctx context.Context, env *Env) (Undo, error)

type fakeStep struct {
	key string
	rec *recorder
	do  doFunc
}

func (s fakeStep) Do(ctx context.Context, env *Env) (Undo, error) {
	if s.rec != nil {
		s.rec.add("do %s", s.key)
	}
	if s.do == nil {
		return nil, nil
	}
	return s.do(ctx, env)
}

// builder returns a Builder whose steps run script["svc/step"], or succeed
// without an undo when the script has no entry.
func builder(rec *recorder, script map[string]doFunc) Builder {
	return func(svc *planner.Service, st *planner.Step) (Step, error) {
		key := svc.Name + "/" + st.Name
		return fakeStep{key: key, rec: rec, do: script[key]}, nil
	}
}

// fakeUndo records its calls; err is what Undo returns.
type fakeUndo struct {
	name string
	rec  *recorder
	err  error
	// ctxErr records the context's error at the time of the call.
	ctxErr *error
}

func (u *fakeUndo) Describe() string { return "undo " + u.name }

func (u *fakeUndo) Undo(ctx context.Context, env *Env) error {
	u.rec.add("undo %s", u.name)
	if u.ctxErr != nil {
		*u.ctxErr = ctx.Err()
	}
	return u.err
}

// fakeReopener is a Reopener: Undo stops, Reopen starts.
type fakeReopener struct {
	fakeUndo
	reopenErr error
}

func (u *fakeReopener) DescribeReopen() string { return "reopen " + u.name }

func (u *fakeReopener) Reopen(ctx context.Context, env *Env) error {
	u.rec.add("reopen %s", u.name)
	return u.reopenErr
}

// fakeCommitter is an Undo with Commit.
type fakeCommitter struct {
	fakeUndo
	commitErr error
}

func (u *fakeCommitter) Commit(ctx context.Context) error {
	u.rec.add("commit %s", u.name)
	return u.commitErr
}

// returning scripts a step that returns undo and err.
func returning(undo Undo, err error) doFunc {
	return func(context.Context, *Env) (Undo, error) { return undo, err }
}

// fakeClock advances one millisecond per reading, so durations are
// deterministic and events are strictly ordered in time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// eventLog collects events from Observe.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	// on, when set, is called for each event (under the lock; must not block).
	on func(Event)
}

func (l *eventLog) observe(ev Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	if l.on != nil {
		l.on(ev)
	}
}

// contract returns the events that go to the events log (not the
// observer-only ones).
func (l *eventLog) contract() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, ev := range l.events {
		if ev.Event != StepLog && ev.Event != StepAttempt {
			out = append(out, ev)
		}
	}
	return out
}

// lines renders events compactly: "EVENT service step [phase] message".
func (l *eventLog) lines() []string {
	var out []string
	for _, ev := range l.contract() {
		s := ev.Event
		for _, f := range []string{ev.Service, ev.Step, ev.Phase} {
			if f != "" {
				s += " " + f
			}
		}
		out = append(out, s)
	}
	return out
}

func (l *eventLog) find(event, service string) []Event {
	var out []Event
	for _, ev := range l.contract() {
		if ev.Event == event && (service == "" || ev.Service == service) {
			out = append(out, ev)
		}
	}
	return out
}

// run runs plan with the defaults a test wants (fake clock, observer) and
// fails the test on a Run error.
func run(t *testing.T, ctx context.Context, plan *planner.Plan, opts Options) (Result, *eventLog) {
	t.Helper()
	log := &eventLog{}
	if opts.Observe == nil {
		opts.Observe = log.observe
	}
	if opts.Now == nil {
		opts.Now = newFakeClock().Now
	}
	if opts.RunID == "" {
		opts.RunID = "test-run"
	}
	res, err := Run(ctx, plan, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res, log
}

// waitOrFail guards a channel wait in a test against a hang; it is a
// deadlock guard, not a timing assertion.
func waitOrFail(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return fmt.Errorf("waited 10s: the expected concurrency never happened")
	}
}

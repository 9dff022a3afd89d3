package executor

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rollout-sh/rollout/planner"
)

func TestSequentialRunFollowsPlanOrder(t *testing.T) {
	tests := []struct {
		name  string
		specs []svcSpec
	}{
		{"chain", specs("a", "b: a", "c: b")},
		{"infra first", specs("sso.postgresql", "sso.redis", "sso.api: sso.postgresql sso.redis", "merchant.api: sso.api")},
		{"independent", specs("z", "y", "x", "w")},
		{"diamond", specs("root", "left: root", "right: root", "leaf: left right")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := makePlan(tt.specs...)
			rec := &recorder{}
			res, log := run(t, context.Background(), plan, Options{Build: builder(rec, nil), Parallel: 1})
			var started []string
			for _, ev := range log.find(ServiceRestartStart, "") {
				started = append(started, ev.Service)
			}
			if !slices.Equal(started, plan.Order) {
				t.Errorf("started %v, want plan order %v", started, plan.Order)
			}
			if !slices.Equal(res.Succeeded, plan.Order) {
				t.Errorf("Succeeded = %v, want %v", res.Succeeded, plan.Order)
			}
			if res.ExitCode() != 0 {
				t.Errorf("ExitCode = %d, want 0", res.ExitCode())
			}
			// Each service's events are contiguous with Parallel 1.
			var want []string
			want = append(want, RunStart)
			for _, name := range plan.Order {
				want = append(want, ServiceRestartStart+" "+name, StepStart+" "+name+" restart",
					StepSuccess+" "+name+" restart", ServiceRestartSuccess+" "+name)
			}
			want = append(want, RunSuccess)
			if got := log.lines(); !slices.Equal(got, want) {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestServiceStartsOnlyAfterItsNeedsSucceeded(t *testing.T) {
	plans := map[string]*planner.Plan{
		"diamond": makePlan(specs("root", "left: root", "right: root", "leaf: left right")...),
		"wide":    makePlan(specs("db", "cache", "a: db", "b: db cache", "c: cache", "d", "e: a b c d", "f: e")...),
	}
	for name, plan := range plans {
		for _, parallel := range []int{0, 1, 2, 3} {
			t.Run(fmt.Sprintf("%s/parallel=%d", name, parallel), func(t *testing.T) {
				_, log := run(t, context.Background(), plan, Options{Build: builder(nil, nil), Parallel: parallel})
				succeeded := map[string]bool{}
				for _, ev := range log.contract() {
					switch ev.Event {
					case ServiceRestartSuccess:
						succeeded[ev.Service] = true
					case ServiceRestartStart:
						svc := plan.Services[slices.Index(plan.Order, ev.Service)]
						for _, need := range svc.Needs {
							if !succeeded[need] {
								t.Errorf("parallel %d: %s started before its need %s succeeded", parallel, ev.Service, need)
							}
						}
					}
				}
				if len(succeeded) != len(plan.Services) {
					t.Errorf("parallel %d: %d services succeeded, want %d", parallel, len(succeeded), len(plan.Services))
				}
			})
		}
	}
}

// inFlightMeter counts the fake steps that are inside Do at once.
type inFlightMeter struct {
	mu       sync.Mutex
	now, max int
}

func (m *inFlightMeter) enter() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now++
	m.max = max(m.max, m.now)
	return m.now
}

func (m *inFlightMeter) leave() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now--
}

func TestParallelServicesOverlap(t *testing.T) {
	// Every Do waits until all four are inside Do at the same time: the run
	// only completes if four services really are in flight together.
	plan := makePlan(specs("a", "b", "c", "d", "e: a b c d")...)
	meter := &inFlightMeter{}
	all := make(chan struct{})
	var once sync.Once
	barrier := func(ctx context.Context, env *Env) (Undo, error) {
		defer meter.leave()
		if meter.enter() == 4 {
			once.Do(func() { close(all) })
		}
		return nil, waitOrFail(ctx, all)
	}
	script := map[string]doFunc{"a/restart": barrier, "b/restart": barrier, "c/restart": barrier, "d/restart": barrier}
	res, _ := run(t, context.Background(), plan, Options{Build: builder(nil, script), Parallel: 4})
	if len(res.Succeeded) != 5 {
		t.Fatalf("Succeeded = %v, Failed = %v; want all 5", res.Succeeded, res.Failed)
	}
	if meter.max != 4 {
		t.Errorf("at most %d services in flight, want 4", meter.max)
	}
}

func TestParallelLimitIsReachedNeverExceeded(t *testing.T) {
	// Services pass Do in rounds of exactly `parallel` (a cyclic barrier):
	// the run only completes if the limit is reached, and a scheduler that
	// started more would put more than `parallel` inside Do at once.
	for _, parallel := range []int{1, 2, 4} {
		plan := makePlan(specs("a", "b", "c", "d", "e", "f", "g", "h")...)
		meter := &inFlightMeter{}
		barrier := newCyclicBarrier(parallel)
		script := map[string]doFunc{}
		for _, svc := range plan.Services {
			script[svc.Name+"/restart"] = func(ctx context.Context, env *Env) (Undo, error) {
				meter.enter()
				defer meter.leave()
				return nil, waitOrFail(ctx, barrier.arrive())
			}
		}
		res, log := run(t, context.Background(), plan, Options{Build: builder(nil, script), Parallel: parallel})
		if len(res.Succeeded) != 8 {
			t.Errorf("parallel %d: Succeeded = %v, Failed = %v", parallel, res.Succeeded, res.Failed)
		}
		if meter.max != parallel {
			t.Errorf("parallel %d: at most %d services in Do at once, want exactly %d", parallel, meter.max, parallel)
		}
		if n := maxInFlight(log.contract(), func(string) bool { return true }); n > parallel {
			t.Errorf("parallel %d: %d services between start and end events at once", parallel, n)
		}
	}
}

// cyclicBarrier releases its waiters each time size of them have arrived.
type cyclicBarrier struct {
	mu    sync.Mutex
	size  int
	count int
	ch    chan struct{}
}

func newCyclicBarrier(size int) *cyclicBarrier {
	return &cyclicBarrier{size: size, ch: make(chan struct{})}
}

// arrive returns the channel closed when this round is full.
func (b *cyclicBarrier) arrive() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.ch
	b.count++
	if b.count == b.size {
		close(ch)
		b.ch = make(chan struct{})
		b.count = 0
	}
	return ch
}

func TestAbortLetsInFlightFinishAndSkipsTheRest(t *testing.T) {
	// a fails while b is in flight; b only finishes after a's failure was
	// reported, so it was in flight when the run aborted. c and d never start.
	plan := makePlan(specs("a", "b", "c", "d: a")...)
	aFailed := make(chan struct{})
	var once sync.Once
	log := &eventLog{on: func(ev Event) {
		if ev.Event == ServiceRestartFailed && ev.Service == "a" {
			once.Do(func() { close(aFailed) })
		}
	}}
	script := map[string]doFunc{
		"a/restart": returning(nil, errors.New("unit failed")),
		"b/restart": func(ctx context.Context, env *Env) (Undo, error) { return nil, waitOrFail(ctx, aFailed) },
	}
	res, _ := run(t, context.Background(), plan, Options{Build: builder(nil, script), Parallel: 2, Observe: log.observe})
	check := func(field string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", field, got, want)
		}
	}
	check("Succeeded", res.Succeeded, []string{"b"})
	check("Failed", res.Failed, []string{"a"})
	check("RolledBack", res.RolledBack, nil)
	check("Skipped", res.Skipped, []string{"c", "d"})
	if res.ExitCode() != 1 {
		t.Errorf("ExitCode = %d, want 1", res.ExitCode())
	}
	causes := map[string]string{}
	for _, ev := range log.find(ServiceSkipped, "") {
		causes[ev.Service] = ev.Cause
	}
	want := map[string]string{"c": "run aborted after a failed", "d": "a"}
	if len(causes) != len(want) || causes["c"] != want["c"] || causes["d"] != want["d"] {
		t.Errorf("skip causes = %v, want %v", causes, want)
	}
	if got := log.find(ServiceRestartStart, "c"); len(got) != 0 {
		t.Errorf("c started after the abort")
	}
	end := log.find(RunFailed, "")
	if len(end) != 1 || !strings.Contains(end[0].Error, "1 of 4 failed") || !strings.Contains(end[0].Error, "2 skipped") {
		t.Errorf("RUN_FAILED = %+v, want one with the counts", end)
	}
}

func TestSequentialAbortEvents(t *testing.T) {
	plan := makePlan(specs("a", "b", "c")...)
	script := map[string]doFunc{"b/restart": returning(nil, errors.New("boom"))}
	res, log := run(t, context.Background(), plan, Options{Build: builder(nil, script), Parallel: 1, OnFailure: "abort"})
	want := []string{
		RunStart,
		ServiceRestartStart + " a", StepStart + " a restart", StepSuccess + " a restart", ServiceRestartSuccess + " a",
		ServiceRestartStart + " b", StepStart + " b restart", StepFailed + " b restart", ServiceRestartFailed + " b",
		ServiceSkipped + " c",
		RunFailed,
	}
	if got := log.lines(); !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	failed := log.find(ServiceRestartFailed, "b")[0]
	if failed.Message != "nothing changed; no rollback needed" || failed.Error != "step restart: boom" {
		t.Errorf("SERVICE_RESTART_FAILED = %+v", failed)
	}
	if !slices.Equal(res.Skipped, []string{"c"}) {
		t.Errorf("Skipped = %v", res.Skipped)
	}
}

func TestContinueSkipsExactlyTheTransitiveDependents(t *testing.T) {
	plan := makePlan(specs(
		"sso.postgresql", "sso.redis",
		"sso.api: sso.postgresql sso.redis",
		"merchant.api: sso.api",
		"cache.only: sso.redis",
		"seo.redis",
		"seo.rag: seo.redis",
	)...)
	script := map[string]doFunc{"sso.postgresql/restart": returning(nil, errors.New("down"))}
	for _, parallel := range []int{1, 0} {
		res, log := run(t, context.Background(), plan, Options{Build: builder(nil, script), Parallel: parallel, OnFailure: "continue"})
		if want := []string{"sso.redis", "cache.only", "seo.redis", "seo.rag"}; !slices.Equal(res.Succeeded, want) {
			t.Errorf("parallel %d: Succeeded = %v, want %v", parallel, res.Succeeded, want)
		}
		if want := []string{"sso.api", "merchant.api"}; !slices.Equal(res.Skipped, want) {
			t.Errorf("parallel %d: Skipped = %v, want %v", parallel, res.Skipped, want)
		}
		for _, ev := range log.find(ServiceSkipped, "") {
			if ev.Cause != "sso.postgresql" || ev.Message != "dependency sso.postgresql failed" {
				t.Errorf("parallel %d: skip of %s: cause %q, message %q", parallel, ev.Service, ev.Cause, ev.Message)
			}
		}
		if res.ExitCode() != 1 {
			t.Errorf("ExitCode = %d, want 1", res.ExitCode())
		}
	}
}

func TestMaxFailuresStopsStartingServices(t *testing.T) {
	tests := []struct {
		maxFailures   int
		wantSucceeded []string
		wantSkipped   []string
	}{
		{0, []string{"c", "e"}, nil},
		{1, nil, []string{"c", "b", "d", "e"}},
		{2, []string{"c"}, []string{"d", "e"}},
		{3, []string{"c"}, []string{"e"}},
	}
	plan := makePlan(specs("a", "c", "b", "d", "e")...)
	script := map[string]doFunc{
		"a/restart": returning(nil, errors.New("a down")),
		"b/restart": returning(nil, errors.New("b down")),
		"d/restart": returning(nil, errors.New("d down")),
	}
	for _, tt := range tests {
		res, log := run(t, context.Background(), plan, Options{Build: builder(nil, script), Parallel: 1, OnFailure: "continue", MaxFailures: tt.maxFailures})
		if !slices.Equal(res.Succeeded, tt.wantSucceeded) || !slices.Equal(res.Skipped, tt.wantSkipped) {
			t.Errorf("max_failures %d: Succeeded %v Skipped %v, want %v %v", tt.maxFailures, res.Succeeded, res.Skipped, tt.wantSucceeded, tt.wantSkipped)
		}
		for _, ev := range log.find(ServiceSkipped, "") {
			if !strings.Contains(ev.Cause, "max_failures") {
				t.Errorf("max_failures %d: skip cause %q does not name max_failures", tt.maxFailures, ev.Cause)
			}
		}
	}
}

func TestBatchMaxUnavailableInRun(t *testing.T) {
	// Six databases and three APIs, unbounded parallelism, at most one
	// database in flight: counted from the ordered event stream.
	var ss []svcSpec
	for _, n := range []string{"db1", "db2", "db3", "db4", "db5", "db6"} {
		ss = append(ss, svcSpec{def: n, typ: "infra"})
	}
	for _, n := range []string{"api1", "api2", "api3"} {
		ss = append(ss, svcSpec{def: n, typ: "api"})
	}
	ss = append(ss, svcSpec{def: "edge", typ: "api", tags: []string{"core"}})
	plan := makePlan(ss...)
	plan.Batches = []planner.Batch{{Types: []string{"infra"}, MaxUnavailable: 1}, {Tags: []string{"core"}, MaxUnavailable: 1}}
	meter := &inFlightMeter{}
	script := map[string]doFunc{}
	for _, svc := range plan.Services {
		if svc.Type == "infra" {
			script[svc.Name+"/restart"] = func(context.Context, *Env) (Undo, error) {
				meter.enter()
				meter.leave()
				return nil, nil
			}
		}
	}
	res, log := run(t, context.Background(), plan, Options{Build: builder(nil, script)})
	if len(res.Succeeded) != len(plan.Services) {
		t.Fatalf("Succeeded = %v", res.Succeeded)
	}
	if meter.max > 1 {
		t.Errorf("%d infra services in Do at once, want at most 1", meter.max)
	}
	if n := maxInFlight(log.contract(), func(svc string) bool { return strings.HasPrefix(svc, "db") }); n > 1 {
		t.Errorf("%d infra services between start and end events at once, want at most 1", n)
	}
}

// maxInFlight counts, over the ordered event stream, the most services
// (those match accepts) that were between their SERVICE_RESTART_START and
// their end event at once.
func maxInFlight(events []Event, match func(service string) bool) int {
	now, most := 0, 0
	for _, ev := range events {
		if !match(ev.Service) {
			continue
		}
		switch ev.Event {
		case ServiceRestartStart:
			now++
			most = max(most, now)
		case ServiceRestartSuccess, ServiceRestartFailed:
			now--
		}
	}
	return most
}

func TestCancelledContextStopsNewServices(t *testing.T) {
	plan := makePlan(specs("a", "b", "c: a")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stepCtxErr error
	script := map[string]doFunc{
		// The first interrupt arrives while a is restarting: a finishes
		// normally, under a context that the interrupt did not cancel.
		"a/restart": func(stepCtx context.Context, env *Env) (Undo, error) {
			cancel()
			stepCtxErr = stepCtx.Err()
			return nil, nil
		},
	}
	res, log := run(t, ctx, plan, Options{Build: builder(nil, script), Parallel: 1})
	if stepCtxErr != nil {
		t.Errorf("the step's context was cancelled by the first interrupt: %v", stepCtxErr)
	}
	if !res.Interrupted || res.ExitCode() != 130 {
		t.Errorf("Interrupted = %v, ExitCode = %d; want true, 130", res.Interrupted, res.ExitCode())
	}
	if !slices.Equal(res.Succeeded, []string{"a"}) || !slices.Equal(res.Skipped, []string{"b", "c"}) {
		t.Errorf("Succeeded %v Skipped %v, want [a] [b c]", res.Succeeded, res.Skipped)
	}
	for _, ev := range log.find(ServiceSkipped, "") {
		if ev.Cause != "interrupted" {
			t.Errorf("skip of %s: cause %q, want \"interrupted\"", ev.Service, ev.Cause)
		}
	}
	if ends := log.find(RunFailed, ""); len(ends) != 1 || !strings.Contains(ends[0].Error, "interrupted") {
		t.Errorf("RUN_FAILED = %+v, want one saying interrupted", ends)
	}
}

func TestAlreadyCancelledContextStartsNothing(t *testing.T) {
	plan := makePlan(specs("a", "b")...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := &recorder{}
	res, _ := run(t, ctx, plan, Options{Build: builder(rec, nil)})
	if len(rec.snapshot()) != 0 || !res.Interrupted || len(res.Skipped) != 2 {
		t.Errorf("ran %v, result %+v; want nothing run, interrupted, 2 skipped", rec.snapshot(), res)
	}
}

func TestAbortCancelsInFlightStepAndRollsBack(t *testing.T) {
	plan := makePlan(
		svcSpec{def: "a", steps: []string{"backup", "restart"}},
		svcSpec{def: "b"},
	)
	rec := &recorder{}
	var undoCtxErr error
	entered := make(chan struct{})
	abort := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	script := map[string]doFunc{
		"a/backup": returning(&fakeUndo{name: "backup", rec: rec, ctxErr: &undoCtxErr}, nil),
		"a/restart": func(stepCtx context.Context, env *Env) (Undo, error) {
			close(entered)
			<-stepCtx.Done() // hangs until the abort cancels it
			return nil, stepCtx.Err()
		},
	}
	go func() {
		<-entered
		cancel()     // first interrupt
		close(abort) // second interrupt
	}()
	res, log := run(t, ctx, plan, Options{Build: builder(rec, script), Parallel: 1, Abort: abort})
	if want := []string{"do a/backup", "do a/restart", "undo backup"}; !slices.Equal(rec.snapshot(), want) {
		t.Errorf("calls = %v, want %v", rec.snapshot(), want)
	}
	if undoCtxErr != nil {
		t.Errorf("the rollback ran under a cancelled context: %v", undoCtxErr)
	}
	if !slices.Equal(res.RolledBack, []string{"a"}) || !slices.Equal(res.Skipped, []string{"b"}) || !res.Interrupted {
		t.Errorf("result %+v, want a rolled back, b skipped, interrupted", res)
	}
	if res.ExitCode() != 130 {
		t.Errorf("ExitCode = %d, want 130", res.ExitCode())
	}
	if len(log.find(RollbackSuccess, "a")) != 1 {
		t.Errorf("no ROLLBACK_SUCCESS for a")
	}
}

func TestRunIDIsGeneratedWhenEmpty(t *testing.T) {
	plan := makePlan(specs("a")...)
	log := &eventLog{}
	res, err := Run(context.Background(), plan, Options{Build: builder(nil, nil), Observe: log.observe})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{6}$`).MatchString(res.RunID) {
		t.Errorf("RunID = %q, want YYYYMMDDTHHMMSSZ-xxxxxx", res.RunID)
	}
	for _, ev := range log.contract() {
		if ev.RunID != res.RunID {
			t.Errorf("%s has run id %q, want %q", ev.Event, ev.RunID, res.RunID)
		}
	}
	start := log.find(RunStart, "")
	if len(start) != 1 || start[0].Plan != "test" || start[0].Message != "restarting 1 service" {
		t.Errorf("RUN_START = %+v", start)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		plan *planner.Plan
		opts Options
		want string
	}{
		{"nil plan", nil, Options{}, "no plan"},
		{"bad on_failure", makePlan(specs("a")...), Options{OnFailure: "ignore"}, `on_failure "ignore"`},
	}
	for _, tt := range tests {
		res, err := Run(context.Background(), tt.plan, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
		if res.RunID != "" {
			t.Errorf("%s: RunID = %q for a run that never started", tt.name, res.RunID)
		}
	}
}

func TestUnsatisfiableNeedsAreSkippedNotHung(t *testing.T) {
	// A cycle never passes the planner; if one reaches Run anyway the run
	// must end, not hang.
	plan := makePlan(specs("a", "b: c", "c: b")...)
	res, _ := run(t, context.Background(), plan, Options{Build: builder(nil, nil)})
	if !slices.Equal(res.Succeeded, []string{"a"}) || !slices.Equal(res.Skipped, []string{"b", "c"}) {
		t.Errorf("result %+v", res)
	}
}

func TestStepLogAndAttemptReachObserverOnly(t *testing.T) {
	plan := makePlan(specs("a")...)
	script := map[string]doFunc{"a/restart": func(ctx context.Context, env *Env) (Undo, error) {
		env.Logf("reloading %s", env.Service.Unit)
		env.Attempt(2)
		return nil, nil
	}}
	sink := &memSink{}
	_, log := run(t, context.Background(), plan, Options{Build: builder(nil, script), Events: sink})
	var notes []Event
	for _, ev := range log.events {
		if ev.Event == StepLog || ev.Event == StepAttempt {
			notes = append(notes, ev)
		}
	}
	if len(notes) != 2 || notes[0].Message != "reloading a.service" || notes[1].Attempt != 2 {
		t.Errorf("observer notes = %+v", notes)
	}
	for _, ev := range sink.events {
		if ev.Event == StepLog || ev.Event == StepAttempt {
			t.Errorf("%s reached the events log", ev.Event)
		}
	}
	if s := log.find(StepSuccess, "a"); len(s) != 1 || s[0].Attempt != 2 {
		t.Errorf("STEP_SUCCESS = %+v, want attempt 2", s)
	}
}

// memSink keeps events in memory; failAfter > 0 makes writes after that
// many fail.
type memSink struct {
	mu        sync.Mutex
	events    []Event
	failAfter int
	writes    atomic.Int64
}

func (s *memSink) Write(ev Event) error {
	// failAfter: 0 never fails, n > 0 fails every write after the nth,
	// -1 fails every write.
	if n := s.writes.Add(1); (s.failAfter > 0 && int(n) > s.failAfter) || s.failAfter < 0 {
		return errors.New("disk full")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return nil
}

func (s *memSink) Close() error { return nil }

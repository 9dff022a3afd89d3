package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// undoEntry is one Undo on a service's rollback stack, with the step that
// pushed it.
type undoEntry struct {
	undo Undo
	step *planner.Step
	// undone: recovery found that the rollback of a run that died had
	// already run this Undo; only its Reopen (if any) is still due.
	undone bool
}

// restart runs one service's steps and, when one fails, its rollback. It
// runs on the service's own goroutine and reports through events.
//
// hold keeps the undo stack of a service that restarted well (a canary):
// it is returned, uncommitted and still in the journal, for the canary's
// promotion or rollback.
//
// t is the service's turn (see WaitTurn): its first step takes it, and it
// ends with that step at the latest.
func (r *runner) restart(svc *planner.Service, hold bool, t *turn) (outcome, *heldStack) {
	defer t.close()
	start := r.now()
	failed := func(err error, message string) {
		r.em.emit(Event{
			Event:      ServiceRestartFailed,
			Service:    svc.Name,
			Unit:       svc.Unit,
			Error:      err.Error(),
			Message:    message,
			DurationMS: r.since(start),
		})
	}

	// Build every step before running any: a plan the builder cannot turn
	// into steps fails before it changes anything.
	steps, err := r.build(svc)
	if err != nil {
		failed(err, "nothing changed; no rollback needed")
		return outcomeFailed, nil
	}
	if len(steps) > 0 {
		if _, ok := steps[0].(Turned); !ok {
			t.close() // a first step that enqueues nothing holds no one back
		}
	}

	sj := r.jr.service(svc)
	var stack []undoEntry
	var failure error
	for k, st := range svc.Steps {
		if r.stepCtx.Err() != nil {
			failure = fmt.Errorf("step %s not started: run aborted", st.Name)
			break
		}
		var attempt atomic.Int64
		env := r.env(svc, st, &attempt)
		if sj != nil {
			env.JournalFunc = func(rec UndoRecord) error { return sj.setInFlight(st.Name, rec) }
			env.ProcessFunc = func(pid int) { sj.procStarted(st.Name, pid) }
		}
		sj.stepStart(st, steps[k], env)
		ctx := r.stepCtx
		if k == 0 {
			ctx = withTurn(ctx, t)
		}
		undo, err := r.doStep(ctx, svc, st, steps[k], env, &attempt)
		if k == 0 {
			t.close()
		}
		var pushed *undoEntry
		if undo != nil {
			stack = append(stack, undoEntry{undo: undo, step: st})
			pushed = &stack[len(stack)-1]
		}
		// The journal write an undo owes may wait for the service's next
		// write when nothing runs in between: the next step's start (one
		// with an in-flight undo), the rollback, the end.
		nextInFlight := false
		if k+1 < len(steps) {
			_, nextInFlight = steps[k+1].(InFlightRecordable)
		}
		sj.stepEnd(pushed, err != nil || k+1 == len(steps) || nextInFlight)
		if err != nil {
			failure = fmt.Errorf("step %s: %w", st.Name, err)
			break
		}
	}

	if failure == nil && hold {
		// A canary stays in the journal until it is promoted: a crash
		// while it is observed rolls it back.
		r.em.emit(Event{
			Event:      ServiceRestartSuccess,
			Service:    svc.Name,
			Unit:       svc.Unit,
			Message:    "canary: held until promoted",
			DurationMS: r.since(start),
		})
		return outcomeSucceeded, &heldStack{stack: stack, sj: sj}
	}
	if failure == nil {
		// Out of the journal before the success is told: a crash in
		// between must not roll back a service that restarted well.
		sj.end()
		r.em.emit(Event{
			Event:      ServiceRestartSuccess,
			Service:    svc.Name,
			Unit:       svc.Unit,
			DurationMS: r.since(start),
		})
		r.commit(svc, stack)
		return outcomeSucceeded, nil
	}
	if len(stack) == 0 {
		sj.end()
		failed(failure, "nothing changed; no rollback needed")
		return outcomeFailed, nil
	}
	sj.rollingBack()
	ok := r.rollback(svc, stack, sj, nil) == rollbackDone
	sj.end()
	if ok {
		failed(failure, "rolled back")
		return outcomeRolledBack, nil
	}
	failed(failure, "rollback failed; a person must act (see ROLLBACK_FAILED)")
	return outcomeRollbackFailed, nil
}

func (r *runner) since(t time.Time) int64 { return r.now().Sub(t).Milliseconds() }

func (r *runner) build(svc *planner.Service) ([]Step, error) {
	if r.opts.Build == nil {
		return nil, errors.New("executor: no step builder")
	}
	steps := make([]Step, len(svc.Steps))
	for k, st := range svc.Steps {
		if st == nil {
			return nil, fmt.Errorf("step %d: missing from the plan", k+1)
		}
		s, err := r.opts.Build(svc, st)
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", st.Name, err)
		}
		if s == nil {
			return nil, fmt.Errorf("step %s: the builder returned no step for type %q", st.Name, st.Type)
		}
		steps[k] = s
	}
	return steps, nil
}

// doStep runs one step with its events.
func (r *runner) doStep(ctx context.Context, svc *planner.Service, st *planner.Step, step Step, env *Env, attempt *atomic.Int64) (Undo, error) {
	r.em.emit(Event{Event: StepStart, Service: svc.Name, Unit: svc.Unit, Step: st.Name})
	var reports []string
	env.ReportFunc = func(msg string) { reports = append(reports, msg) }
	t0 := r.now()
	undo, err := callDo(ctx, step, env)
	ev := Event{
		Event:      StepSuccess,
		Service:    svc.Name,
		Unit:       svc.Unit,
		Step:       st.Name,
		DurationMS: r.since(t0),
		Attempt:    int(attempt.Load()),
		// What the step reported (a blue-green step: the color live
		// before and after, "switched") ends up in the events log.
		Message: strings.Join(reports, "; "),
	}
	if err != nil {
		ev.Event, ev.Error = StepFailed, err.Error()
	}
	r.em.emit(ev)
	return undo, err
}

func (r *runner) env(svc *planner.Service, st *planner.Step, attempt *atomic.Int64) *Env {
	return &Env{
		RunID:    r.opts.RunID,
		Service:  svc,
		Step:     st,
		Force:    r.opts.Force,
		Expected: r.took[stepKey{svc.Name, st.Name}],
		Logf: func(format string, args ...any) {
			r.em.note(Event{Event: StepLog, Service: svc.Name, Unit: svc.Unit, Step: st.Name, Message: fmt.Sprintf(format, args...)})
		},
		Attempt: func(n int) {
			if attempt != nil {
				attempt.Store(int64(n))
			}
			r.em.note(Event{Event: StepAttempt, Service: svc.Name, Unit: svc.Unit, Step: st.Name, Attempt: n})
		},
		PhaseFunc: func(phase string) {
			r.em.note(Event{Event: StepPhase, Service: svc.Name, Unit: svc.Unit, Step: st.Name, Message: phase})
		},
	}
}

// callDo runs a step's work; a panicking step fails its service (and rolls
// it back) instead of taking the whole run down half-way.
func callDo(ctx context.Context, step Step, env *Env) (undo Undo, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("step panicked: %v", p)
		}
	}()
	return step.Do(ctx, env)
}

func callUndo(ctx context.Context, u Undo, env *Env) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("undo panicked: %v", p)
		}
	}()
	return u.Undo(ctx, env)
}

func callReopen(ctx context.Context, u Reopener, env *Env) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reopen panicked: %v", p)
		}
	}()
	return u.Reopen(ctx, env)
}

func describe(u Undo) (s string) {
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("%T", u)
		}
	}()
	return u.Describe()
}

func describeReopen(u Reopener) (s string) {
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("reopen %T", u)
		}
	}()
	return u.DescribeReopen()
}

// rollbackResult is how a rollback ended.
type rollbackResult int

const (
	rollbackDone rollbackResult = iota
	rollbackFailed
	// rollbackInterrupted: abort was closed between two undos; the
	// journal holds what is left for a later recovery.
	rollbackInterrupted
)

// rollback unwinds stack: it pops and undoes in reverse; a Reopener's Undo
// runs when popped (stop the unit) and its Reopen after everything below it
// was undone (start the unit, verify health). Nested Reopeners reopen
// innermost (the earliest pushed, which brackets the fewest undos) first;
// Readmitters run last, once every Reopen succeeded.
// Every undo is tried even after one failed, so that as much as possible
// is restored. Each undo done is journaled (sj) before what it kept is
// dropped (Discarder) and before the next undo starts; abort, once
// closed, stops the rollback between two undos.
func (r *runner) rollback(svc *planner.Service, stack []undoEntry, sj *svcJournal, abort <-chan struct{}) rollbackResult {
	// Never the run's context: an interrupted or aborted run must still
	// put the service back. Each undo bounds its own jobs (a rollback
	// job gets a longer bound than the step's); this bounds the whole.
	ctx, cancel := context.WithTimeout(r.base, rollbackTimeout)
	defer cancel()

	start := r.now()
	r.em.emit(Event{
		Event:   RollbackStart,
		Service: svc.Name,
		Unit:    svc.Unit,
		Message: fmt.Sprintf("undoing %s", plural(len(stack), "step")),
	})

	var failures []string // "step: error", for the event's Error
	var unrestored []string
	var causes []error
	fail := func(what, desc string, err error) {
		failures = append(failures, fmt.Sprintf("%s: %v", what, err))
		unrestored = append(unrestored, desc)
		causes = append(causes, err)
	}
	kept := make([]bool, len(stack)) // entries whose changes stay: nothing can undo them
	// undo runs stack[k]'s Undo unless a dead run's rollback did, and
	// records it done before dropping what it kept.
	undo := func(k int) {
		e := stack[k]
		desc := describe(e.undo)
		if !e.undone {
			err := r.rollbackStep(ctx, svc, e.step, desc, func(env *Env) error { return callUndo(ctx, e.undo, env) })
			if errors.Is(err, ErrIrreversible) {
				kept[k] = true
				err = nil
			}
			if err != nil {
				fail(e.step.Name, desc, err)
				return
			}
			// Recovery after a crash from here on must not undo it twice
			// (a restored snapshot is dropped next).
			sj.undone(k)
		}
		if d, ok := e.undo.(Discarder); ok {
			if err := callDiscard(ctx, d); err != nil {
				r.em.note(Event{Event: StepLog, Service: svc.Name, Unit: svc.Unit, Step: e.step.Name, Phase: "rollback", Error: err.Error(),
					Message: "cleanup after the undo failed (the undo itself succeeded; clean up by hand): " + err.Error()})
			}
		}
	}
	var reopens []undoEntry
	var readmits []int // stack indexes, in pop order
	reopenFailed := false
	for k := len(stack) - 1; k >= 0; k-- {
		if closed(abort) {
			return rollbackInterrupted
		}
		e := stack[k]
		if _, ok := e.undo.(Readmitter); ok && !e.undone {
			readmits = append(readmits, k)
			continue
		}
		undo(k)
		if _, ok := e.undo.(Reopener); ok {
			// Reopen even when the Undo failed: the service should end
			// up running whatever else went wrong.
			reopens = append(reopens, e)
		}
	}
	for k := len(reopens) - 1; k >= 0; k-- {
		if closed(abort) {
			return rollbackInterrupted
		}
		e := reopens[k]
		ro := e.undo.(Reopener)
		desc := describeReopen(ro)
		err := r.rollbackStep(ctx, svc, e.step, desc, func(env *Env) error { return callReopen(ctx, ro, env) })
		if errors.Is(err, ErrIrreversible) {
			err = nil // a reopen has nothing to keep; its Undo is what is named
		}
		if err != nil {
			fail(e.step.Name+" (reopen)", desc, err)
			reopenFailed = true
		}
	}
	for _, k := range readmits {
		if closed(abort) {
			return rollbackInterrupted
		}
		e := stack[k]
		if reopenFailed {
			// Held back: traffic to a service that is not back would fail.
			fail(e.step.Name, describe(e.undo), errors.New("not done, the service did not come back"))
			continue
		}
		undo(k)
	}

	var irreversible []string // in step order
	for k, e := range stack {
		if kept[k] {
			irreversible = append(irreversible, e.step.Name)
		}
	}
	r.noteIrreversible(svc.Name, irreversible)
	if len(failures) == 0 {
		r.em.emit(Event{Event: RollbackSuccess, Service: svc.Name, Unit: svc.Unit, DurationMS: r.since(start),
			Irreversible: irreversible, Message: notUndone(irreversible)})
		return rollbackDone
	}
	r.em.emit(Event{
		Event:        RollbackFailed,
		Service:      svc.Name,
		Unit:         svc.Unit,
		Error:        strings.Join(failures, "; "),
		Message:      joinLines(manualRollback(svc, unrestored, causes, r.opts.UserManager), notUndone(irreversible)),
		DurationMS:   r.since(start),
		Irreversible: irreversible,
	})
	return rollbackFailed
}

// notUndone says what a rollback left in place, for the event's Message;
// "" when it left nothing.
func notUndone(steps []string) string {
	if len(steps) == 0 {
		return ""
	}
	return fmt.Sprintf("NOT UNDONE: %s cannot be undone, so what %s changed stays changed (a migration stays applied)",
		quotedList(steps), pick(len(steps) == 1, "it", "they"))
}

func joinLines(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "\n" + b
}

func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

func (r *runner) noteIrreversible(service string, steps []string) {
	if len(steps) == 0 {
		return
	}
	r.irreversibleMu.Lock()
	defer r.irreversibleMu.Unlock()
	if r.irreversible == nil {
		r.irreversible = map[string][]string{}
	}
	r.irreversible[service] = steps
}

// irreversibleSteps returns Result.Irreversible: nil when every rollback
// undid everything.
func (r *runner) irreversibleSteps() map[string][]string {
	r.irreversibleMu.Lock()
	defer r.irreversibleMu.Unlock()
	return maps.Clone(r.irreversible)
}

// rollbackStep runs one undo or reopen with its events. An irreversible
// undo is not a failure of the rollback (there was nothing it could
// restore): its STEP_SUCCESS says so, and the error is returned wrapping
// ErrIrreversible for the rollback to name the step. What the
// undo reports (Env.Report) ends its event's message.
func (r *runner) rollbackStep(ctx context.Context, svc *planner.Service, st *planner.Step, desc string, run func(*Env) error) error {
	env := r.env(svc, st, nil)
	var reports []string
	env.ReportFunc = func(msg string) { reports = append(reports, msg) }
	r.em.emit(Event{Event: StepStart, Service: svc.Name, Unit: svc.Unit, Step: st.Name, Phase: "rollback", Message: desc})
	t0 := r.now()
	err := run(env)
	ev := Event{Event: StepSuccess, Service: svc.Name, Unit: svc.Unit, Step: st.Name, Phase: "rollback", Message: desc}
	switch {
	case err == nil:
	case errors.Is(err, ErrIrreversible):
		ev.Message = "irreversible: " + err.Error()
	default:
		ev.Event, ev.Error = StepFailed, err.Error()
	}
	if len(reports) > 0 {
		ev.Message += "; " + strings.Join(reports, "; ")
	}
	ev.DurationMS = r.since(t0)
	r.em.emit(ev)
	return err
}

// commit lets the undos of a successful service drop what they kept for a
// rollback. A failure is only noted: the restart itself succeeded.
func (r *runner) commit(svc *planner.Service, stack []undoEntry) {
	var ctx context.Context
	for k := len(stack) - 1; k >= 0; k-- {
		c, ok := stack[k].undo.(Committer)
		if !ok {
			continue
		}
		if ctx == nil {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(r.base, rollbackTimeout)
			defer cancel()
		}
		if err := callCommit(ctx, c); err != nil {
			r.em.note(Event{
				Event:   StepLog,
				Service: svc.Name,
				Unit:    svc.Unit,
				Step:    stack[k].step.Name,
				Error:   err.Error(),
				Message: "commit failed (the restart succeeded; clean up by hand): " + err.Error(),
			})
		}
	}
}

func callCommit(ctx context.Context, c Committer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("commit panicked: %v", p)
		}
	}()
	return c.Commit(ctx)
}

func callDiscard(ctx context.Context, d Discarder) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("discard panicked: %v", p)
		}
	}()
	return d.Discard(ctx)
}

package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/internal/phase"
	"github.com/rollout-sh/rollout/planner"
)

// rollbackTimeout bounds a rollback (and a Commit). Rollbacks run under a
// context of their own, never the run's: an interrupted run must still put
// a half-restarted service back.
const rollbackTimeout = 10 * time.Minute

// Run executes plan. Cancelling ctx stops new services from starting; the
// services in flight finish or roll back (rollbacks never run under a
// cancelled context), and the Result is marked Interrupted. The error is for
// problems outside the services themselves (the lock is held, the events log
// cannot be written); service failures are in the Result.
//
// When Run fails before the run starts (no plan, a bad option, the lock is
// held), it emits no event and returns a Result with an empty RunID.
// Run does not close Options.Events: whoever opened it closes it.
func Run(ctx context.Context, plan *planner.Plan, opts Options) (Result, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RunID == "" {
		opts.RunID = newRunID(opts.Now())
	}
	if plan == nil {
		return Result{}, errors.New("executor: no plan")
	}
	switch opts.OnFailure {
	case "":
		opts.OnFailure = dsl.OnFailureAbort
	case dsl.OnFailureAbort, dsl.OnFailureContinue:
	default:
		return Result{}, fmt.Errorf("executor: on_failure %q is not %q or %q", opts.OnFailure, dsl.OnFailureAbort, dsl.OnFailureContinue)
	}

	var jr *journalWriter
	journals := opts.JournalDir
	if journals == "" && opts.LockPath != "" {
		journals = JournalDir(opts.LockPath)
	}
	// The controller's lock guards its manager. A plan whose services all
	// run on hosts takes none (LockPath ""): the hosts' locks guard them,
	// and two such runs from one controller on different hosts both go.
	var lock *Lock
	holder := lockHolder(plan, opts)
	holder.Journals = journals
	dirs := []string{journals}
	if opts.LockPath != "" {
		var err error
		if lock, err = AcquireLock(opts.LockPath, holder); err != nil {
			return Result{}, err
		}
		defer lock.Release()
		phase.Mark("controller locked")
		if lock.Previous != nil {
			dirs = append(dirs, lock.Previous.Journals)
		}
	}
	if journals != "" {
		// A journal left by a run that died means services may be half
		// restarted: nothing new starts until `rollout recover` ran. A
		// live run's journal (locked by it) is not one.
		unfinished, err := UnfinishedRuns(dirs...)
		if err != nil {
			return Result{}, err
		}
		unfinished = dropUnstarted(unfinished, opts.Warn)
		phase.Mark("journals scanned")
		if len(unfinished) > 0 {
			if lock != nil {
				// The lock file names the dead run's journal again, for
				// the recover that comes next.
				holder.Journals = filepath.Dir(unfinished[0].Path)
				_ = lock.setHolder(holder)
			}
			return Result{}, &UnfinishedRunError{Journal: unfinished[0], UserManager: opts.UserManager}
		}
	}
	if opts.LockHosts != nil {
		release, err := opts.LockHosts(ctx, lockHolder(plan, opts))
		if err != nil {
			return Result{}, err
		}
		defer release()
		phase.Mark("hosts locked")
	}
	// The journal is created while preflight reads: its fsyncs (tens of
	// milliseconds on a busy disk) and preflight's reads of every unit
	// need different things. A run that dies before a service starts
	// leaves a journal with no service in it, which the next run removes
	// (dropUnstarted).
	var (
		jrDone chan struct{}
		jrErr  error
	)
	if journals != "" {
		jrDone = make(chan struct{})
		go func() {
			defer close(jrDone)
			jr, jrErr = newJournalWriter(journals, plan, opts)
			phase.Mark("journal created")
		}()
	}
	// How long each service took in earlier runs ranks the services the
	// plan alone cannot tell apart; the log is read while preflight reads.
	var took learned
	tookDone := make(chan struct{})
	go func() {
		defer close(tookDone)
		took = readLearned(opts.EventsLog)
	}()
	// Under the lock, so that what it sees is not another run's work in
	// progress (a unit file that run is installing).
	if opts.Preflight != nil {
		if err := Preflight(ctx, plan, *opts.Preflight); err != nil {
			if jrDone != nil {
				<-jrDone
				_ = jr.remove()
			}
			return Result{}, err
		}
		phase.Mark("preflight done")
	}
	if jrDone != nil {
		<-jrDone
		if jrErr != nil {
			return Result{}, jrErr
		}
	}
	if opts.PromoteDir == "" && journals != "" {
		opts.PromoteDir = PromoteDir(journals)
	}

	<-tookDone
	r := &runner{
		plan: plan,
		opts: opts,
		now:  opts.Now,
		em: &emitter{sink: opts.Events, observe: opts.Observe, runID: opts.RunID, now: opts.Now,
			hosts: instanceHosts(plan), instances: templateInstances(plan)},
		jr:         jr,
		sched:      newSchedule(plan, opts.Parallel, took.service),
		took:       took.step,
		done:       make(chan serviceDone, len(plan.Services)),
		canaryDone: make(chan canaryDone, len(plan.Canaries)),
		runCtx:     ctx,
		turns:      newTurns(opts.TurnWait),
		// Rollbacks and commits keep ctx's values but not its cancellation.
		base: context.WithoutCancel(ctx),
	}
	// Steps run under their own context: the first interrupt (ctx) lets
	// them finish; only Abort cancels them.
	stepCtx, cancelSteps := context.WithCancel(r.base)
	defer cancelSteps()
	r.stepCtx = stepCtx
	r.setupCanaries()

	start := r.now()
	r.em.emit(Event{
		Event:   RunStart,
		Plan:    plan.Name,
		Message: fmt.Sprintf("restarting %s", plural(len(plan.Services), "service")),
	})
	if err := r.em.firstError(); err != nil {
		// A run that cannot record its start would leave a history that
		// says nothing happened while services restart: refuse it before
		// anything changes.
		jerr := jr.remove()
		return Result{}, errors.Join(&EventsLogError{Err: err}, jerr)
	}
	phase.Mark("RUN_START")
	r.walk(ctx, cancelSteps)
	phase.Mark("services done")
	res := r.result()
	res.Duration = r.now().Sub(start)

	end := Event{Event: RunSuccess, Plan: plan.Name, DurationMS: res.Duration.Milliseconds()}
	if summary, ok := summarise(res, len(plan.Services)); !ok {
		end.Event = RunFailed
		end.Error = summary
	} else {
		end.Message = summary
	}
	// Ended is set before the final event: a crash between the two leaves
	// a journal that recovery removes without a second final event.
	jr.ending()
	r.em.emit(end)
	phase.Mark("RUN end event")
	jerr := jr.remove()
	phase.Mark("journal removed")
	var everr error
	if err := r.em.err(); err != nil {
		everr = &EventsLogError{Err: err, Started: true}
	}
	return res, errors.Join(everr, jerr)
}

// dropUnstarted removes, from unfinished, the journals of runs that died
// before any service started (a kill during preflight): they hold nothing
// to recover. Each is removed from disk, with a warning naming it.
func dropUnstarted(unfinished []*Journal, warn func(string)) []*Journal {
	out := unfinished[:0]
	for _, j := range unfinished {
		if len(j.Services) > 0 || j.Path == "" {
			out = append(out, j)
			continue
		}
		if err := os.Remove(j.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			out = append(out, j)
			continue
		}
		syncDir(filepath.Dir(j.Path))
		if warn != nil {
			warn(fmt.Sprintf("run %s (plan %s) ended before it restarted anything; its journal %s was removed", j.RunID, j.Plan, j.Path))
		}
	}
	return out
}

// EventsLogError is a run whose events could not all be written. Before
// the run started (Started false) nothing was changed; after, the
// services' outcomes are in the Result but the events log is incomplete.
type EventsLogError struct {
	Err     error
	Started bool
}

func (e *EventsLogError) Error() string {
	if !e.Started {
		return fmt.Sprintf("cannot write RUN_START to the events log, so the run did not start and nothing was changed: %v", e.Err)
	}
	return fmt.Sprintf("the events log is incomplete: %v", e.Err)
}

func (e *EventsLogError) Unwrap() error { return e.Err }

func lockHolder(plan *planner.Plan, opts Options) LockHolder {
	h := LockHolder{PID: os.Getpid(), RunID: opts.RunID, Plan: plan.Name, Started: opts.Now()}
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	} else {
		h.User = os.Getenv("USER")
	}
	h.Host, _ = os.Hostname()
	return h
}

// runner is one run: the coordinator's state plus what service goroutines
// share (read-only, except the emitter which locks).
type runner struct {
	plan    *planner.Plan
	opts    Options
	now     func() time.Time
	em      *emitter
	jr      *journalWriter // nil without a lock path
	sched   *schedule
	turns   *turns
	took    map[stepKey]time.Duration // each step's best in earlier runs
	done    chan serviceDone
	base    context.Context // the run's values without its cancellation
	stepCtx context.Context // cancelled by Abort
	runCtx  context.Context // the run's own: cancelled by the first interrupt

	// canaryOf maps each canary instance (plan index) to its phase;
	// canaryDone receives the phases' ends.
	canaryOf   map[int]*canaryRun
	canaryDone chan canaryDone

	// irreversible is Result.Irreversible, filled by the rollbacks, which
	// run on the services' goroutines.
	irreversibleMu sync.Mutex
	irreversible   map[string][]string

	// Coordinator-only state.
	stopCause   string // why no new service may start; "" while they may
	interrupted bool
	failures    int
	// canariesActive counts canary phases being observed or rolled back.
	canariesActive int
}

type serviceDone struct {
	index   int
	outcome outcome
	// held is the undo stack of a canary that restarted well, kept until
	// its promotion.
	held *heldStack
}

// walk is the coordinator loop: it starts every ready service a slot allows,
// then waits for a service to finish, an interrupt, or an abort. It is the
// only goroutine that touches the schedule.
func (r *runner) walk(ctx context.Context, cancelSteps context.CancelFunc) {
	ctxDone := ctx.Done()
	abort := r.opts.Abort
	for {
		if ctx.Err() != nil {
			ctxDone = nil
			r.interrupt()
		}
		select {
		case <-abort:
			abort = nil
			r.interrupt()
			cancelSteps()
		default:
		}
		if r.stopCause == "" {
			for {
				i, ok := r.sched.next()
				if !ok {
					break
				}
				// SERVICE_RESTART_START is emitted here, by the
				// coordinator, not by the service's goroutine: the events
				// log then shows the order the scheduler decided in, so a
				// service started together with one that fails at once
				// never appears to start after the failure.
				svc := r.plan.Services[i]
				r.em.emit(Event{Event: ServiceRestartStart, Service: svc.Name, Unit: svc.Unit, Message: plural(len(svc.Steps), "step")})
				go r.runService(i, r.turns.take(r.sched.hostOf[i]))
			}
		}
		if r.sched.inFlight == 0 && r.canariesActive == 0 {
			break
		}
		select {
		case d := <-r.done:
			r.finished(d)
		case d := <-r.canaryDone:
			r.canaryResolved(d)
		case <-ctxDone:
			ctxDone = nil
			r.interrupt()
		case <-abort:
			abort = nil
			r.interrupt()
			cancelSteps()
		}
	}
	cause, msg := r.stopCause, r.stopCause
	if cause == "" {
		// Only reachable when Needs form a cycle, which the planner rejects.
		cause, msg = "dependencies never finished", "its dependencies never finished (a dependency cycle?)"
	}
	for _, i := range r.sched.skipRest() {
		r.skip(i, cause, msg)
	}
}

func (r *runner) runService(i int, t *turn) {
	o, held := r.restart(r.plan.Services[i], r.isCanary(i), t)
	r.done <- serviceDone{index: i, outcome: o, held: held}
}

// interrupt stops new services from starting. A run with nothing left to do
// is not marked interrupted.
func (r *runner) interrupt() {
	if r.interrupted || (r.sched.pending == 0 && r.sched.inFlight == 0 && r.canariesActive == 0) {
		return
	}
	r.interrupted = true
	r.stop("interrupted")
}

func (r *runner) stop(cause string) {
	if r.stopCause == "" {
		r.stopCause = cause
	}
}

func (r *runner) finished(d serviceDone) {
	r.sched.finish(d.index, d.outcome)
	if cr := r.canaryOf[d.index]; cr != nil {
		r.canaryFinished(cr, d)
	}
	if !d.outcome.failed() {
		return
	}
	r.failures++
	name := r.plan.Services[d.index].Name
	for _, i := range r.sched.skipDependents(d.index) {
		r.skip(i, name, fmt.Sprintf("dependency %s failed", name))
	}
	switch {
	case r.opts.OnFailure == dsl.OnFailureAbort:
		r.stop(fmt.Sprintf("run aborted after %s failed", name))
	case r.opts.MaxFailures > 0 && r.failures >= r.opts.MaxFailures:
		r.stop(fmt.Sprintf("run stopped after %s (max_failures %d)", plural(r.failures, "failure"), r.opts.MaxFailures))
	}
}

func (r *runner) skip(i int, cause, message string) {
	svc := r.plan.Services[i]
	r.em.emit(Event{Event: ServiceSkipped, Service: svc.Name, Unit: svc.Unit, Cause: cause, Message: message})
}

func (r *runner) result() Result {
	res := Result{RunID: r.opts.RunID, Interrupted: r.interrupted, Irreversible: r.irreversibleSteps()}
	for i, svc := range r.plan.Services {
		switch r.sched.outcome[i] {
		case outcomeSucceeded:
			res.Succeeded = append(res.Succeeded, svc.Name)
		case outcomeFailed:
			res.Failed = append(res.Failed, svc.Name)
		case outcomeRolledBack:
			res.Failed = append(res.Failed, svc.Name)
			res.RolledBack = append(res.RolledBack, svc.Name)
		case outcomeRollbackFailed:
			res.Failed = append(res.Failed, svc.Name)
			res.RollbackFailed = append(res.RollbackFailed, svc.Name)
		default:
			res.Skipped = append(res.Skipped, svc.Name)
		}
	}
	return res
}

// summarise says what the run did in one line, and whether all of it went
// well.
func summarise(res Result, total int) (string, bool) {
	if len(res.Failed) == 0 && len(res.Skipped) == 0 && !res.Interrupted {
		return fmt.Sprintf("%s restarted", plural(total, "service")), true
	}
	var parts []string
	if n := len(res.Failed); n > 0 {
		s := fmt.Sprintf("%d of %d failed", n, total)
		var detail []string
		if m := len(res.RolledBack); m > 0 {
			detail = append(detail, fmt.Sprintf("%d rolled back", m))
		}
		if m := len(res.RollbackFailed); m > 0 {
			detail = append(detail, fmt.Sprintf("%d rollback failed", m))
		}
		if len(detail) > 0 {
			s += " (" + strings.Join(detail, ", ") + ")"
		}
		parts = append(parts, s)
	}
	parts = append(parts, fmt.Sprintf("%d succeeded", len(res.Succeeded)))
	if n := len(res.Skipped); n > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", n))
	}
	if res.Interrupted {
		parts = append(parts, "interrupted")
	}
	return strings.Join(parts, ", "), false
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

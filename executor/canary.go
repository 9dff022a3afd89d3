package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// Check is one check of a canary's observation, ready to run: the
// instance's health check, an HTTP analysis, a command. The steps package
// builds them (Options.BuildCheck); the executor only runs them.
type Check interface {
	// Check runs the check once; an error fails the canary.
	Check(ctx context.Context) error
}

// CheckBuilder turns a planned check into a runnable one. inst is the
// canary instance the check is for (the first canary for a check of all
// of them), so that a command runs on its host.
type CheckBuilder func(inst *planner.Service, c *planner.Check) (Check, error)

// promotePoll is how often a canary waiting for a person looks for the
// promotion file: a person does not notice a quarter of a second.
const promotePoll = 250 * time.Millisecond

// Promotion is what `rollout promote` writes for a run whose canary waits:
// promote it, or reject it (Abort), and who did.
type Promotion struct {
	By    string    `json:"by"`
	Abort bool      `json:"abort,omitempty"`
	Time  time.Time `json:"time"`
}

// PromoteDir is where the promotion handshake of the runs whose journals
// are in journals lives.
func PromoteDir(journals string) string { return filepath.Join(journals, "promote") }

// WaitingFile is the file a run creates while its canary waits for a
// person (it holds the service's name); PromotionFile the one `rollout
// promote` writes for it.
func WaitingFile(dir, runID string) string   { return filepath.Join(dir, runID+".waiting") }
func PromotionFile(dir, runID string) string { return filepath.Join(dir, runID+".promote") }

// Promote writes the promotion (or the rejection, with p.Abort) of the
// canary run runID waits on. It fails when no such run is waiting.
func Promote(dir, runID string, p Promotion) error {
	if runID == "" || strings.ContainsAny(runID, "/\\") || strings.HasPrefix(runID, ".") {
		return fmt.Errorf("%q is not a run id", runID)
	}
	f, err := os.Open(WaitingFile(dir, runID))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no canary of run %s is waiting for promotion (in %s)", runID, dir)
		}
		return err
	}
	defer f.Close()
	// The waiting run holds a lock on its file: a lock we can take means
	// the run died while it waited, and an answer would reach nobody.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = os.Remove(WaitingFile(dir, runID))
		return fmt.Errorf("run %s is not running any more (it ended while its canary waited): nothing to promote; `rollout recover` puts back what it left", runID)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := PromotionFile(dir, runID) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, PromotionFile(dir, runID))
}

// canaryRun is one canary phase in a run. The coordinator owns it;
// the goroutine observing it owns held.
type canaryRun struct {
	c       *planner.Canary
	members []int // plan indexes of the canaries
	rest    []int
	pending int // members not finished yet
	// held are the rollback stacks of the canaries that restarted well,
	// kept (not committed) until the promotion: a failed canary is rolled
	// back with them.
	held    map[int]*heldStack
	failure string // a canary that failed its own pipeline
}

type heldStack struct {
	stack []undoEntry
	sj    *svcJournal
}

// canaryDone is what the goroutine of a canary phase reports.
type canaryDone struct {
	run      *canaryRun
	promoted bool
	outcomes map[int]outcome // the canaries' outcomes after a rollback
	cause    string
}

func (r *runner) setupCanaries() {
	if len(r.plan.Canaries) == 0 {
		return
	}
	index := make(map[string]int, len(r.plan.Services))
	for i, svc := range r.plan.Services {
		index[svc.Name] = i
	}
	r.canaryOf = map[int]*canaryRun{}
	for _, c := range r.plan.Canaries {
		cr := &canaryRun{c: c, held: map[int]*heldStack{}}
		for _, name := range c.Canaries {
			if i, ok := index[name]; ok {
				cr.members = append(cr.members, i)
				r.canaryOf[i] = cr
			}
		}
		for _, name := range c.Rest {
			if i, ok := index[name]; ok {
				cr.rest = append(cr.rest, i)
			}
		}
		cr.pending = len(cr.members)
		if len(cr.members) == 0 {
			continue // narrowed away (--host): nothing to observe
		}
		r.sched.gate(cr.rest)
	}
}

// canaryFinished is called by the coordinator when canary i finished. Once
// every canary of its phase did, the phase is observed (or, when one
// failed, the others are rolled back) on a goroutine of its own.
func (r *runner) canaryFinished(cr *canaryRun, d serviceDone) {
	if d.held != nil {
		cr.held[d.index] = d.held
	} else if d.outcome.failed() && cr.failure == "" {
		cr.failure = fmt.Sprintf("canary %s failed", r.plan.Services[d.index].Name)
	}
	if cr.pending--; cr.pending > 0 {
		return
	}
	r.canariesActive++
	go func() { r.canaryDone <- r.observeCanary(cr) }()
}

// canaryResolved is called by the coordinator with what became of a
// canary phase: its rest start, or the canaries are failed and the rest
// skipped.
func (r *runner) canaryResolved(d canaryDone) {
	r.canariesActive--
	cr := d.run
	if d.promoted {
		r.sched.openGate(cr.rest)
		return
	}
	failedNow := false
	for i, o := range d.outcomes {
		r.sched.outcome[i] = o
		r.failures++
		failedNow = true
	}
	for _, i := range r.sched.skipGated(cr.rest) {
		r.skip(i, cr.c.Service, fmt.Sprintf("the canary of %s failed: %s", cr.c.Service, d.cause))
	}
	if !failedNow {
		return // already counted when the canary's own pipeline failed
	}
	switch {
	case r.opts.OnFailure == "abort":
		r.stop(fmt.Sprintf("run aborted after the canary of %s failed", cr.c.Service))
	case r.opts.MaxFailures > 0 && r.failures >= r.opts.MaxFailures:
		r.stop(fmt.Sprintf("run stopped after %s (max_failures %d)", plural(r.failures, "failure"), r.opts.MaxFailures))
	}
}

// observeCanary runs on its own goroutine: it observes the canaries for
// the window, waits for a person when the canary is not promoted
// automatically, and then commits the canaries' undo stacks (promoted) or
// rolls them back one at a time (failed).
func (r *runner) observeCanary(cr *canaryRun) canaryDone {
	c := cr.c
	names := func(idx []int) string {
		var s []string
		for _, i := range idx {
			s = append(s, r.plan.Services[i].Name)
		}
		return strings.Join(s, ", ")
	}
	cause := cr.failure
	if cause == "" {
		cause = r.watchCanary(cr)
	}
	if cause == "" {
		for _, i := range cr.members {
			h := cr.held[i]
			h.sj.end()
			r.commit(r.plan.Services[i], h.stack)
		}
		return canaryDone{run: cr, promoted: true}
	}
	r.em.emit(Event{Event: CanaryFailed, Service: c.Service, Error: cause,
		Message: fmt.Sprintf("rolling back %s; %s not touched", names(cr.members), names(cr.rest))})
	out := canaryDone{run: cr, cause: cause, outcomes: map[int]outcome{}}
	// One at a time, in plan order: rolling the canaries back must not
	// take more instances out of traffic than restarting them did.
	for _, i := range cr.members {
		h := cr.held[i]
		if h == nil {
			continue // failed in its own pipeline: rolled back then
		}
		svc := r.plan.Services[i]
		h.sj.rollingBack()
		res := r.rollback(svc, h.stack, h.sj, nil)
		h.sj.end()
		o, msg := outcomeRolledBack, "rolled back"
		if res != rollbackDone {
			o, msg = outcomeRollbackFailed, "rollback failed; a person must act (see ROLLBACK_FAILED)"
		}
		r.em.emit(Event{Event: ServiceRestartFailed, Service: svc.Name, Unit: svc.Unit, Error: "canary failed: " + cause, Message: msg})
		out.outcomes[i] = o
	}
	return out
}

// watchCanary observes the canaries and waits for the promotion. It
// returns why the canary failed, "" when it is promoted.
func (r *runner) watchCanary(cr *canaryRun) string {
	c := cr.c
	checks, err := r.buildChecks(cr)
	if err != nil {
		return err.Error()
	}
	var list []string
	for _, ch := range c.Checks {
		list = append(list, ch.Describe())
	}
	msg := fmt.Sprintf("observing %s for %s, every %s: %s", strings.Join(c.Canaries, ", "), c.Observe, c.Interval, strings.Join(list, "; "))
	if !c.AutoPromote {
		msg += fmt.Sprintf("; then waiting up to %s for `rollout promote %s`", c.PromoteTimeout, r.opts.RunID)
	}
	r.em.emit(Event{Event: CanaryStart, Service: c.Service, Message: msg})
	start := r.now()

	// The first interrupt (the run's context) stops a canary that was not
	// promoted yet: promoting would start new instances.
	ctx := r.runCtx
	failedRounds := 0
	// round runs every check once; it returns why the canary failed, ""
	// when it passed or its failure is within failure_limit.
	round := func() string {
		for k, ch := range checks {
			cctx, cancel := context.WithTimeout(r.stepCtx, max(c.Checks[k].Timeout, time.Second))
			err := callCheck(cctx, ch)
			cancel()
			if err == nil {
				continue
			}
			cause := fmt.Sprintf("%s: %v", c.Checks[k].Describe(), err)
			if failedRounds++; failedRounds <= c.FailureLimit {
				r.em.note(Event{Event: StepLog, Service: c.Service, Error: err.Error(),
					Message: fmt.Sprintf("canary check failed (%d of %d tolerated by failure_limit): %s", failedRounds, c.FailureLimit, cause)})
				return ""
			}
			if c.FailureLimit > 0 {
				cause += fmt.Sprintf(" (%s failed; failure_limit %d)", plural(failedRounds, "round"), c.FailureLimit)
			}
			return cause
		}
		return ""
	}
	deadline := start.Add(c.Observe)
	for {
		if cause := round(); cause != "" {
			return cause
		}
		left := deadline.Sub(r.now())
		if left <= 0 {
			break
		}
		if !sleepOrDone(ctx, min(left, c.Interval)) {
			return "interrupted before promotion"
		}
	}
	if c.AutoPromote {
		r.em.emit(Event{Event: CanaryPromoted, Service: c.Service, DurationMS: r.since(start),
			Message: fmt.Sprintf("promoted automatically after %s; restarting %s", c.Observe, strings.Join(c.Rest, ", "))})
		return ""
	}
	return r.awaitPromotion(ctx, cr, start, round)
}

// awaitPromotion waits for `rollout promote RUN_ID` (a file in the
// promotion directory) while the checks keep running on their interval.
func (r *runner) awaitPromotion(ctx context.Context, cr *canaryRun, start time.Time, round func() string) string {
	c := cr.c
	dir := r.opts.PromoteDir
	if dir == "" {
		return "the canary needs a person's promotion, but this run has no state directory to receive it"
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Sprintf("cannot wait for promotion: %v", err)
	}
	waiting := WaitingFile(dir, r.opts.RunID)
	promoted := PromotionFile(dir, r.opts.RunID)
	// Held locked while the run waits, so that `rollout promote` can tell
	// a live run from the file of one that was killed.
	wf, err := os.OpenFile(waiting, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err == nil {
		if err = syscall.Flock(int(wf.Fd()), syscall.LOCK_EX); err == nil {
			_, err = wf.WriteString(c.Service + "\n")
		}
	}
	if err != nil {
		if wf != nil {
			wf.Close()
		}
		return fmt.Sprintf("cannot wait for promotion: %v", err)
	}
	defer wf.Close()
	defer os.Remove(waiting)
	defer os.Remove(promoted)
	r.em.note(Event{Event: CanaryWaiting, Service: c.Service,
		Message: fmt.Sprintf("waiting up to %s for a person: rollout promote %s (or --abort)", c.PromoteTimeout, r.opts.RunID)})
	waitStart := r.now()
	nextRound := waitStart.Add(c.Interval)
	for {
		if data, err := os.ReadFile(promoted); err == nil {
			var p Promotion
			if err := json.Unmarshal(data, &p); err != nil {
				return fmt.Sprintf("unreadable promotion %s: %v", promoted, err)
			}
			if p.Abort {
				return fmt.Sprintf("rejected by %s", p.By)
			}
			r.em.emit(Event{Event: CanaryPromoted, Service: c.Service, DurationMS: r.since(start),
				Message: fmt.Sprintf("promoted by %s; restarting %s", p.By, strings.Join(c.Rest, ", "))})
			return ""
		}
		if r.now().Sub(waitStart) >= c.PromoteTimeout {
			return fmt.Sprintf("not promoted within %s", c.PromoteTimeout)
		}
		if !r.now().Before(nextRound) {
			if cause := round(); cause != "" {
				return cause
			}
			nextRound = r.now().Add(c.Interval)
		}
		if !sleepOrDone(ctx, promotePoll) {
			return "interrupted before promotion"
		}
	}
}

// buildChecks builds the canary's checks, each for its instance (the
// first canary for a check of all of them).
func (r *runner) buildChecks(cr *canaryRun) ([]Check, error) {
	if r.opts.BuildCheck == nil {
		return nil, errors.New("executor: no check builder for the canary")
	}
	byName := map[string]*planner.Service{}
	for _, i := range cr.members {
		byName[r.plan.Services[i].Name] = r.plan.Services[i]
	}
	first := r.plan.Services[cr.members[0]]
	var out []Check
	for _, pc := range cr.c.Checks {
		inst := first
		if pc.Instance != "" {
			if s, ok := byName[pc.Instance]; ok {
				inst = s
			}
		}
		ch, err := r.opts.BuildCheck(inst, pc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pc.Describe(), err)
		}
		out = append(out, ch)
	}
	return out, nil
}

func callCheck(ctx context.Context, c Check) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return c.Check(ctx)
}

// sleepOrDone sleeps d; false when ctx ended first.
func sleepOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isCanary reports whether plan index i is a canary held until promotion.
func (r *runner) isCanary(i int) bool {
	_, ok := r.canaryOf[i]
	return ok
}

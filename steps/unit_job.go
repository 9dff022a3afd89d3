package steps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// restart, start and stop run one systemd job and wait for its result;
// each is undone by the inverse job.
func unitJobStepType(name string) planner.StepType {
	rollback := map[string]string{
		TypeRestart: "the inverse job: stop, then the restore chain, start, verify health",
		TypeStart:   "the inverse job: stop",
		TypeStop:    "the inverse job: start after the restore chain, verify health",
	}[name]
	return planner.StepType{
		Name: name,
		Spec: hcldec.ObjectSpec{
			"timeout":          &hcldec.AttrSpec{Name: "timeout", Type: cty.String},
			"rollback_timeout": &hcldec.AttrSpec{Name: "rollback_timeout", Type: cty.String},
			"unit":             &hcldec.AttrSpec{Name: "unit", Type: cty.String},
		},
		Rollback: rollback,
		Validate: validateDurations("timeout", "rollback_timeout"),
		Estimate: timeoutEstimate(defaultJobTimeout),
	}
}

// timeoutEstimate is the Estimate of a step bounded by its `timeout`
// argument: nothing it always waits for, at most the timeout.
func timeoutEstimate(def time.Duration) func(map[string]cty.Value, *planner.Health) planner.Span {
	return func(args map[string]cty.Value, _ *planner.Health) planner.Span {
		d, ok := (&argReader{args: args}).duration("timeout")
		if !ok {
			d = def
		}
		return planner.Span{Worst: d}
	}
}

// minRollbackJobTimeout is the least time a rollback's job gets: longer
// than systemd's own default start and stop timeouts (90 s), so that the
// manager, not rollout, decides that an old version cannot start. A step's
// timeout bounds the new version's restart; it says nothing of how long
// the old one needs to come back.
const minRollbackJobTimeout = 2 * time.Minute

// rollbackJobTimeout is the bound of a rollback's jobs when the step sets
// no rollback_timeout: twice the step's, at least minRollbackJobTimeout.
func rollbackJobTimeout(step time.Duration) time.Duration {
	return max(2*step, minRollbackJobTimeout)
}

// unitJob is what every step that runs systemd jobs on one unit knows.
type unitJob struct {
	unit    string
	timeout time.Duration // per job
	// rollbackTimeout bounds each job of the undo (stop, start).
	rollbackTimeout time.Duration
	health          planner.Health
	sd              Backend
	check           healthFunc
	// definitionChanged is set by prepare when the unit file had changed
	// on disk (NeedDaemonReload): the running process was started from the
	// old definition, so only a restart applies the new one.
	definitionChanged bool
}

func (b *builder) unitJob(svc *planner.Service, r *argReader) unitJob {
	j := unitJob{unit: stepUnit(svc, r), timeout: defaultJobTimeout, health: serviceHealth(svc), sd: b.sd, check: b.checkHealth}
	if d, ok := r.duration("timeout"); ok {
		j.timeout = d
	}
	j.rollbackTimeout = rollbackJobTimeout(j.timeout)
	if d, ok := r.duration("rollback_timeout"); ok {
		j.rollbackTimeout = d
	}
	return j
}

type unitJobStep struct {
	unitJob
	op Op
}

func (b *builder) buildUnitJob(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &unitJobStep{unitJob: b.unitJob(svc, r)}
	switch step.Type {
	case TypeRestart:
		s.op = OpRestart
	case TypeStart:
		s.op = OpStart
	case TypeStop:
		s.op = OpStop
	default:
		return nil, fmt.Errorf("not a unit job step type: %q", step.Type)
	}
	return s, nil
}

// TakesTurn: the job is enqueued in the scheduler's order (executor.Turned).
func (s *unitJobStep) TakesTurn() {}

func (s *unitJobStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	before, err := s.prepareFields(ctx, env, unitJobFields)
	if err != nil {
		return nil, err
	}
	switch s.op {
	case OpRestart:
		return s.reopenUndo(true), s.restart(ctx, env, before)
	case OpStart:
		if isActive(before.ActiveState) {
			// Already running: the start changes nothing, and stopping
			// the unit on rollback would break what was working.
			logf(env, "%s already active", s.unit)
			return nil, nil
		}
		u := &stopUndo{unitJob: s.unitJob}
		// What undoes a start is known only now (the unit was not
		// running): in the journal before the job changes anything.
		if err := env.JournalInFlight(u.Record()); err != nil {
			return nil, err
		}
		if err := s.job(ctx, OpStart); err != nil {
			// The unit may be half up (activating, failed): stop it.
			return u, err
		}
		after, err := s.sd.Status(ctx, s.unit)
		if err != nil {
			return u, fmt.Errorf("status of %s after start: %w", s.unit, err)
		}
		if !isActive(after.ActiveState) {
			return u, fmt.Errorf("%s is %s after start", s.unit, describeState(after))
		}
		logf(env, "started (InvocationID %s)", displayID(after.InvocationID))
		return u, nil
	default: // OpStop
		if !isActive(before.ActiveState) && before.ActiveState != "activating" && before.ActiveState != "deactivating" {
			logf(env, "%s already %s", s.unit, before.ActiveState)
			return nil, nil
		}
		u := s.reopenUndo(false)
		if err := env.JournalInFlight(u.Record()); err != nil {
			return nil, err
		}
		if err := s.job(ctx, OpStop); err != nil {
			return u, err
		}
		after, err := s.sd.Status(ctx, s.unit)
		if err != nil {
			return u, fmt.Errorf("status of %s after stop: %w", s.unit, err)
		}
		if after.ActiveState != "inactive" && after.ActiveState != "failed" {
			return u, fmt.Errorf("%s is %s after stop", s.unit, describeState(after))
		}
		logf(env, "stopped")
		return u, nil
	}
}

// beforeJobFields is what the steps read of the state prepare returns;
// unitJobFields is the part a restart, start or stop reads (a reload
// also needs CanReload and MainPID). Each field is a D-Bus round trip
// through a single-threaded manager that 30 restarts share.
const (
	beforeJobFields = unitJobFields | FieldCanReload | FieldMainPID
	unitJobFields   = FieldNeedDaemonReload | FieldActiveState | FieldInvocationID
)

// afterRestartFields is what proves a restart (restart, awaitJob) and
// what describeState shows; provenFields is the proof alone, read first
// (the rest only when the proof fails and the message needs it).
const (
	afterRestartFields = provenFields | FieldSubState | FieldResult
	provenFields       = FieldActiveState | FieldInvocationID
)

// prepare reads the unit before a job: it must be loaded, and a unit file
// changed on disk is reloaded first so the job runs the file as it is now.
// It reads beforeJobFields only.
func (j *unitJob) prepare(ctx context.Context, env *executor.Env) (UnitState, error) {
	return j.prepareFields(ctx, env, beforeJobFields)
}

// prepareFields is prepare reading fields (with NeedDaemonReload).
func (j *unitJob) prepareFields(ctx context.Context, env *executor.Env, fields Field) (UnitState, error) {
	fields |= FieldNeedDaemonReload
	st, err := statusOf(ctx, j.sd, j.unit, fields)
	if err != nil {
		return st, fmt.Errorf("status of %s: %w", j.unit, err)
	}
	if st.LoadState != "loaded" {
		return st, fmt.Errorf("unit %s is %s, not loaded", j.unit, loadStateText(st.LoadState))
	}
	if st.NeedDaemonReload {
		j.definitionChanged = true
		logf(env, "daemon-reload: the unit file of %s changed on disk", j.unit)
		if err := j.sd.DaemonReload(ctx); err != nil {
			return st, fmt.Errorf("daemon-reload: %w", err)
		}
		if st, err = statusOf(ctx, j.sd, j.unit, fields); err != nil {
			return st, fmt.Errorf("status of %s: %w", j.unit, err)
		}
	}
	return st, nil
}

// job runs op on the unit and waits for its result, bounded by timeout.
func (j *unitJob) job(ctx context.Context, op Op) error {
	return j.jobWithin(ctx, op, j.timeout)
}

// undoJob runs a job of the rollback, bounded by rollbackTimeout.
func (j *unitJob) undoJob(ctx context.Context, op Op) error {
	d := j.rollbackTimeout
	if d <= 0 {
		d = rollbackJobTimeout(j.timeout)
	}
	return j.jobWithin(ctx, op, d)
}

func (j *unitJob) jobWithin(ctx context.Context, op Op, timeout time.Duration) error {
	jctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	err := j.sd.Do(jctx, op, j.unit)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && jctx.Err() == context.DeadlineExceeded {
		if op == OpStop {
			return fmt.Errorf("%s %s: no result after %s: %w: %w", op, j.unit, timeout, executor.ErrStopTimedOut, err)
		}
		return fmt.Errorf("%s %s: no result after %s: %w", op, j.unit, timeout, err)
	}
	// The backend's errors name the operation and the unit (the Backend
	// contract): say it once.
	var jobErr *JobError
	var opErr *OpError
	if errors.As(err, &jobErr) || errors.As(err, &opErr) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, j.unit, err)
}

// restart restarts the unit and proves it: systemd's "done" only means the
// job finished, so a new InvocationID (a new run of the unit) and an
// active state are required.
func (j *unitJob) restart(ctx context.Context, env *executor.Env, before UnitState) error {
	jobErr := j.job(ctx, OpRestart)
	if jobErr != nil && !errors.Is(jobErr, ErrConnectionLost) {
		return jobErr
	}
	// With the connection lost mid-job the result is unknown; the unit's
	// InvocationID tells whether the restart happened.
	after, err := statusOf(ctx, j.sd, j.unit, provenFields)
	if err != nil && jobErr != nil {
		return jobErr
	}
	if err != nil {
		return fmt.Errorf("status of %s after restart: %w", j.unit, err)
	}
	if after.InvocationID == "" || after.InvocationID == before.InvocationID {
		if jobErr != nil {
			return jobErr
		}
		return fmt.Errorf("restart of %s did not take effect: InvocationID is still %q", j.unit, after.InvocationID)
	}
	if jobErr != nil {
		// The restart happened, but its job may still be running (the
		// unit activating): wait for the job's end, as the lost result
		// would have, instead of failing and restarting it once more.
		logf(env, "connection to systemd lost during the restart; InvocationID changed, waiting for the job to finish")
		if after, err = j.awaitJob(ctx, after); err != nil {
			return err
		}
	}
	if !isActive(after.ActiveState) {
		if full, err := statusOf(ctx, j.sd, j.unit, afterRestartFields); err == nil {
			after = full
		}
		return fmt.Errorf("%s is %s after restart", j.unit, describeState(after))
	}
	logf(env, "restarted (InvocationID %s→%s)", displayID(before.InvocationID), displayID(after.InvocationID))
	return nil
}

// awaitJob polls the unit until it leaves a transitional state
// (activating, deactivating), at most the job timeout: the end of a job
// whose result was lost with the connection.
func (j *unitJob) awaitJob(ctx context.Context, st UnitState) (UnitState, error) {
	wctx, cancel := withTimeout(ctx, j.timeout)
	defer cancel()
	for st.ActiveState == "activating" || st.ActiveState == "deactivating" {
		select {
		case <-wctx.Done():
			return st, fmt.Errorf("%s is still %s %s after its restart, whose result was lost with the connection to systemd: %w", j.unit, describeState(st), j.timeout, wctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		var err error
		if st, err = statusOf(wctx, j.sd, j.unit, afterRestartFields); err != nil {
			return st, fmt.Errorf("status of %s after restart: %w", j.unit, err)
		}
	}
	return st, nil
}

func (j *unitJob) reopenUndo(stop bool) *reopenUndo {
	return &reopenUndo{unitJob: *j, stop: stop}
}

// reopenUndo brackets the undos below it on the rollback stack: Undo stops
// the unit (when the step left it running), the earlier steps' undos
// restore code and unit file, and Reopen starts the unit and checks its
// health. The executor calls Reopen after those undos.
type reopenUndo struct {
	unitJob
	// stop is false for a stop step: the unit is already stopped and
	// only Reopen has work.
	stop bool
}

func (u *reopenUndo) Describe() string {
	if u.stop {
		return "stop " + u.unit
	}
	return "leave " + u.unit + " stopped until the undos before it are done"
}

// DescribeReopen says what Reopen will do.
func (u *reopenUndo) DescribeReopen() string { return "start " + u.unit + ", verify health" }

func (u *reopenUndo) Undo(ctx context.Context, env *executor.Env) error {
	if !u.stop {
		return nil
	}
	if err := u.undoJob(ctx, OpStop); err != nil {
		return err
	}
	logf(env, "stopped %s", u.unit)
	return nil
}

func (u *reopenUndo) Reopen(ctx context.Context, env *executor.Env) error {
	return startAndVerify(ctx, env, &u.unitJob)
}

// startAndVerify starts the unit and, unless --force, runs the service's
// health check against it.
func startAndVerify(ctx context.Context, env *executor.Env, j *unitJob) error {
	if err := j.undoJob(ctx, OpStart); err != nil {
		return err
	}
	st, err := j.sd.Status(ctx, j.unit)
	if err != nil {
		return fmt.Errorf("status of %s after start: %w", j.unit, err)
	}
	if !isActive(st.ActiveState) {
		return fmt.Errorf("%s is %s after start", j.unit, describeState(st))
	}
	logf(env, "started %s (InvocationID %s)", j.unit, displayID(st.InvocationID))
	if forced(env) {
		logf(env, "health check of %s skipped (--force)", j.unit)
		return nil
	}
	if err := verifyHealth(ctx, env, j.check, j.health, j.unit, j.sd); err != nil {
		return fmt.Errorf("%s started but is not healthy: %w", j.unit, err)
	}
	return nil
}

// stopUndo undoes a start step: the unit was not running before.
type stopUndo struct{ unitJob }

func (u *stopUndo) Describe() string { return "stop " + u.unit }

func (u *stopUndo) Undo(ctx context.Context, env *executor.Env) error {
	if err := u.undoJob(ctx, OpStop); err != nil {
		return err
	}
	logf(env, "stopped %s", u.unit)
	return nil
}

// isActive: "reloading" is an active unit between two states of its
// configuration, so it counts.
func isActive(activeState string) bool {
	return activeState == "active" || activeState == "reloading"
}

func describeState(st UnitState) string {
	s := st.ActiveState
	if s == "" {
		s = "in an unknown state"
	}
	if st.SubState != "" {
		s += " (" + st.SubState + ")"
	}
	if st.Result != "" && st.Result != "success" {
		s += ", result " + st.Result
	}
	return s
}

// displayID is an InvocationID for log lines; a unit that is not running
// has none.
func displayID(id string) string {
	if id == "" {
		return "none"
	}
	return id
}

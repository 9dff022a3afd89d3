// Package systemdfake is a scriptable in-memory systemd manager for unit
// tests and the engine benchmark. It is kept out of package steps so that
// no test double ships in the production packages; the behaviour it mimics
// is checked against a real manager by steps/systemd_test.go.
package systemdfake

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rollout-sh/rollout/internal/systemdapi"
)

// Systemd is a scriptable in-memory systemdapi.Backend. Units behave like
// systemd's: start and restart give a new InvocationID and MainPID, reload keeps them, stop clears MainPID, a
// missing unit is systemdapi.ErrNoSuchUnit for jobs and LoadState "not-found" for
// Status, reload without CanReload is systemdapi.ErrNotApplicable. Fail scripts
// failures. It is safe for concurrent use.
type Systemd struct {
	mu      sync.Mutex
	units   map[string]*systemdapi.UnitState
	fail    map[fakeKey]error
	calls   []Call
	reloads int
	seq     uint64
	closed  bool
}

// Call is one call recorded by Systemd: Op is a job,
// DaemonReloadOp (Unit "") or StatusOp.
type Call struct {
	Op   systemdapi.Op
	Unit string
}

// Ops Systemd records and fails besides the jobs.
const (
	DaemonReloadOp systemdapi.Op = "daemon-reload"
	StatusOp       systemdapi.Op = "status"
)

type fakeKey struct {
	op   systemdapi.Op
	unit string
}

// New returns a fake with no units.
func New() *Systemd {
	return &Systemd{units: map[string]*systemdapi.UnitState{}, fail: map[fakeKey]error{}}
}

// AddUnit adds a loaded, running unit that can reload when canReload,
// and returns its state.
func (f *Systemd) AddUnit(unit string, canReload bool) systemdapi.UnitState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &systemdapi.UnitState{
		LoadState:    "loaded",
		FragmentPath: "/etc/systemd/system/" + unit,
		CanReload:    canReload,
	}
	f.startLocked(st)
	f.units[unit] = st
	return *st
}

// SetUnit sets a unit's whole state (LoadState "" means "loaded").
func (f *Systemd) SetUnit(unit string, st systemdapi.UnitState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.LoadState == "" {
		st.LoadState = "loaded"
	}
	f.units[unit] = &st
}

// Unit returns a unit's state and whether the fake has it.
func (f *Systemd) Unit(unit string) (systemdapi.UnitState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.units[unit]
	if !ok {
		return systemdapi.UnitState{}, false
	}
	return *st, true
}

// Fail makes every later op on unit fail with err, without changing the
// unit; a nil err clears it. op may be StatusOp, or DaemonReloadOp
// with unit "". Use a *systemdapi.JobError for a job result
// (&systemdapi.JobError{Op: systemdapi.OpRestart, Unit: u, Result: "failed"}).
func (f *Systemd) Fail(op systemdapi.Op, unit string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, fakeKey{op, unit})
		return
	}
	f.fail[fakeKey{op, unit}] = err
}

// Calls returns the calls made so far, in order.
func (f *Systemd) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// DaemonReloads returns how many daemon-reloads were made.
func (f *Systemd) DaemonReloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads
}

// DaemonReload clears NeedDaemonReload on every unit.
func (f *Systemd) DaemonReload(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Op: DaemonReloadOp})
	if err := f.checkLocked(ctx); err != nil {
		return err
	}
	if err := f.fail[fakeKey{DaemonReloadOp, ""}]; err != nil {
		return err
	}
	f.reloads++
	for _, st := range f.units {
		st.NeedDaemonReload = false
	}
	return nil
}

// Do runs op on unit as systemd would. Its errors, injected ones too, are
// a *JobError or an *OpError, as the backend contract says.
func (f *Systemd) Do(ctx context.Context, op systemdapi.Op, unit string) error {
	err := f.do(ctx, op, unit)
	var jobErr *systemdapi.JobError
	var opErr *systemdapi.OpError
	if err == nil || errors.As(err, &jobErr) || errors.As(err, &opErr) {
		return err
	}
	return &systemdapi.OpError{Op: op, Unit: unit, Err: err}
}

func (f *Systemd) do(ctx context.Context, op systemdapi.Op, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Op: op, Unit: unit})
	if err := f.checkLocked(ctx); err != nil {
		return err
	}
	if err := f.fail[fakeKey{op, unit}]; err != nil {
		return err
	}
	st, ok := f.units[unit]
	if !ok || st.LoadState == "not-found" {
		return &systemdapi.CallError{Kind: systemdapi.ErrNoSuchUnit, Err: fmt.Errorf("Unit %s not found.", unit)}
	}
	active := st.ActiveState == "active"
	switch op {
	case systemdapi.OpStart:
		if !active {
			f.startLocked(st)
		}
	case systemdapi.OpStop:
		st.ActiveState, st.SubState, st.MainPID = "inactive", "dead", 0
	case systemdapi.OpRestart:
		f.startLocked(st)
	case systemdapi.OpReload:
		if !st.CanReload {
			return &systemdapi.CallError{Kind: systemdapi.ErrNotApplicable,
				Err: fmt.Errorf("Job type reload is not applicable for unit %s.", unit)}
		}
		if !active {
			return &systemdapi.JobError{Op: op, Unit: unit, Result: "invalid"}
		}
		st.ReloadResult = "success"
	case systemdapi.OpReloadOrRestart:
		if st.CanReload && active {
			st.ReloadResult = "success"
		} else {
			f.startLocked(st)
		}
	default:
		return fmt.Errorf("unknown systemd operation %q", op)
	}
	return nil
}

// startLocked gives st a new process, as a start or restart does.
func (f *Systemd) startLocked(st *systemdapi.UnitState) {
	f.seq++
	st.ActiveState, st.SubState, st.Result = "active", "running", "success"
	st.InvocationID = fmt.Sprintf("%032x", f.seq)
	st.MainPID = uint32(1000 + f.seq)
	st.ActiveEnterMono = f.seq * 1_000_000
}

// Status returns the unit's state; an unknown unit reads "not-found".
func (f *Systemd) Status(ctx context.Context, unit string) (systemdapi.UnitState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Op: StatusOp, Unit: unit})
	if err := f.checkLocked(ctx); err != nil {
		return systemdapi.UnitState{}, err
	}
	if err := f.fail[fakeKey{StatusOp, unit}]; err != nil {
		return systemdapi.UnitState{}, err
	}
	st, ok := f.units[unit]
	if !ok {
		return systemdapi.UnitState{LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}, nil
	}
	out := *st
	out.DropInPaths = append([]string(nil), st.DropInPaths...)
	return out, nil
}

// StatusOf is Status with only fields (and LoadState) kept, as the D-Bus
// backend reads them: a step that reads a property it did not ask for
// sees it zero, in the fake-driven tests too.
func (f *Systemd) StatusOf(ctx context.Context, unit string, fields systemdapi.Field) (systemdapi.UnitState, error) {
	st, err := f.Status(ctx, unit)
	return st.Only(fields | systemdapi.FieldLoadState), err
}

func (f *Systemd) checkLocked(ctx context.Context) error {
	if f.closed {
		return fmt.Errorf("systemd backend is closed")
	}
	return ctx.Err()
}

// Close makes later calls fail.
func (f *Systemd) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

package steps

import (
	"context"
	"fmt"
	"sync"
)

// FakeSystemd is a scriptable in-memory Backend for unit tests of other
// packages. Units behave like systemd's: start and restart give a new
// InvocationID and MainPID, reload keeps them, stop clears MainPID, a
// missing unit is ErrNoSuchUnit for jobs and LoadState "not-found" for
// Status, reload without CanReload is ErrNotApplicable. Fail scripts
// failures. It is safe for concurrent use.
type FakeSystemd struct {
	mu      sync.Mutex
	units   map[string]*UnitState
	fail    map[fakeKey]error
	calls   []FakeCall
	reloads int
	seq     uint64
	closed  bool
}

// FakeCall is one call recorded by FakeSystemd: Op is a job,
// FakeDaemonReload (Unit "") or FakeStatus.
type FakeCall struct {
	Op   Op
	Unit string
}

// Ops FakeSystemd records and fails besides the jobs.
const (
	FakeDaemonReload Op = "daemon-reload"
	FakeStatus       Op = "status"
)

type fakeKey struct {
	op   Op
	unit string
}

// NewFakeSystemd returns a fake with no units.
func NewFakeSystemd() *FakeSystemd {
	return &FakeSystemd{units: map[string]*UnitState{}, fail: map[fakeKey]error{}}
}

// AddUnit adds a loaded, running unit that can reload when canReload,
// and returns its state.
func (f *FakeSystemd) AddUnit(unit string, canReload bool) UnitState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &UnitState{
		LoadState:    "loaded",
		FragmentPath: "/etc/systemd/system/" + unit,
		CanReload:    canReload,
	}
	f.startLocked(st)
	f.units[unit] = st
	return *st
}

// SetUnit sets a unit's whole state (LoadState "" means "loaded").
func (f *FakeSystemd) SetUnit(unit string, st UnitState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.LoadState == "" {
		st.LoadState = "loaded"
	}
	f.units[unit] = &st
}

// Unit returns a unit's state and whether the fake has it.
func (f *FakeSystemd) Unit(unit string) (UnitState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.units[unit]
	if !ok {
		return UnitState{}, false
	}
	return *st, true
}

// Fail makes every later op on unit fail with err, without changing the
// unit; a nil err clears it. op may be FakeStatus, or FakeDaemonReload
// with unit "". Use a *JobError for a job result
// (&JobError{Op: OpRestart, Unit: u, Result: "failed"}).
func (f *FakeSystemd) Fail(op Op, unit string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, fakeKey{op, unit})
		return
	}
	f.fail[fakeKey{op, unit}] = err
}

// Calls returns the calls made so far, in order.
func (f *FakeSystemd) Calls() []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeCall(nil), f.calls...)
}

// DaemonReloads returns how many daemon-reloads were made.
func (f *FakeSystemd) DaemonReloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads
}

// DaemonReload clears NeedDaemonReload on every unit.
func (f *FakeSystemd) DaemonReload(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, FakeCall{Op: FakeDaemonReload})
	if err := f.checkLocked(ctx); err != nil {
		return err
	}
	if err := f.fail[fakeKey{FakeDaemonReload, ""}]; err != nil {
		return err
	}
	f.reloads++
	for _, st := range f.units {
		st.NeedDaemonReload = false
	}
	return nil
}

// Do runs op on unit as systemd would.
func (f *FakeSystemd) Do(ctx context.Context, op Op, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, FakeCall{Op: op, Unit: unit})
	if err := f.checkLocked(ctx); err != nil {
		return err
	}
	if err := f.fail[fakeKey{op, unit}]; err != nil {
		return err
	}
	st, ok := f.units[unit]
	if !ok || st.LoadState == "not-found" {
		return fmt.Errorf("%s %s: %w", op, unit, &callError{kind: ErrNoSuchUnit, err: fmt.Errorf("Unit %s not found.", unit)})
	}
	active := st.ActiveState == "active"
	switch op {
	case OpStart:
		if !active {
			f.startLocked(st)
		}
	case OpStop:
		st.ActiveState, st.SubState, st.MainPID = "inactive", "dead", 0
	case OpRestart:
		f.startLocked(st)
	case OpReload:
		if !st.CanReload {
			return fmt.Errorf("%s %s: %w", op, unit, &callError{kind: ErrNotApplicable,
				err: fmt.Errorf("Job type reload is not applicable for unit %s.", unit)})
		}
		if !active {
			return &JobError{Op: op, Unit: unit, Result: "invalid"}
		}
		st.ReloadResult = "success"
	case OpReloadOrRestart:
		if st.CanReload && active {
			st.ReloadResult = "success"
		} else {
			f.startLocked(st)
		}
	default:
		return fmt.Errorf("%s %s: unknown systemd operation %q", op, unit, op)
	}
	return nil
}

// startLocked gives st a new process, as a start or restart does.
func (f *FakeSystemd) startLocked(st *UnitState) {
	f.seq++
	st.ActiveState, st.SubState, st.Result = "active", "running", "success"
	st.InvocationID = fmt.Sprintf("%032x", f.seq)
	st.MainPID = uint32(1000 + f.seq)
	st.ActiveEnterMono = f.seq * 1_000_000
}

// Status returns the unit's state; an unknown unit reads "not-found".
func (f *FakeSystemd) Status(ctx context.Context, unit string) (UnitState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, FakeCall{Op: FakeStatus, Unit: unit})
	if err := f.checkLocked(ctx); err != nil {
		return UnitState{}, err
	}
	if err := f.fail[fakeKey{FakeStatus, unit}]; err != nil {
		return UnitState{}, err
	}
	st, ok := f.units[unit]
	if !ok {
		return UnitState{LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}, nil
	}
	out := *st
	out.DropInPaths = append([]string(nil), st.DropInPaths...)
	return out, nil
}

func (f *FakeSystemd) checkLocked(ctx context.Context) error {
	if f.closed {
		return fmt.Errorf("systemd backend is closed")
	}
	return ctx.Err()
}

// Close makes later calls fail.
func (f *FakeSystemd) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

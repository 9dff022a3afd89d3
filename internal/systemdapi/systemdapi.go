// Package systemdapi is the contract between the steps and a systemd
// manager: the jobs, a unit's state, the Backend interface and the errors a
// Backend wraps. It is its own package so that a test double
// (internal/systemdfake) can implement Backend without importing the
// steps it is a double for; package steps re-exports every name here.
package systemdapi

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Op is a systemd job.
type Op string

// The jobs a Backend runs.
const (
	OpStart           Op = "start"
	OpStop            Op = "stop"
	OpRestart         Op = "restart"
	OpReload          Op = "reload"
	OpReloadOrRestart Op = "reload-or-restart"
)

// UnitState is a snapshot of a unit's properties, as systemd's
// org.freedesktop.systemd1.Unit and .Service interfaces report them.
type UnitState struct {
	LoadState, ActiveState, SubState string
	Result, ReloadResult             string
	FragmentPath, InvocationID       string
	MainPID, NRestarts               uint32
	ActiveEnterMono                  uint64
	CanReload, NeedDaemonReload      bool
	DropInPaths                      []string
	// StateChangeTime is when ActiveState last changed (systemd's
	// StateChangeTimestamp); zero when unknown.
	StateChangeTime time.Time
}

// Loaded returns an error naming the load state unless the unit is
// loaded. Status reports a missing unit as LoadState "not-found" rather
// than as an error, as systemd does; callers that need the unit check this.
func (s UnitState) Loaded() error {
	if s.LoadState == "loaded" {
		return nil
	}
	state := s.LoadState
	if state == "" {
		state = "unknown"
	}
	return fmt.Errorf("unit is not loaded (load state %q)", state)
}

// Field selects properties of UnitState, for FieldReader.StatusOf.
type Field uint16

// One Field per property of UnitState.
const (
	FieldLoadState Field = 1 << iota
	FieldActiveState
	FieldSubState
	FieldFragmentPath
	FieldCanReload
	FieldNeedDaemonReload
	FieldActiveEnterMono
	FieldInvocationID
	FieldDropInPaths
	FieldResult
	FieldReloadResult
	FieldMainPID
	FieldNRestarts
	FieldStateChangeTime

	AllFields = FieldStateChangeTime<<1 - 1
)

// FieldReader is a Backend that can read some of a unit's properties
// only, which costs the manager less than reading them all (steps.DBus).
type FieldReader interface {
	// StatusOf is Status with only the properties in fields and
	// LoadState, which is always read; the others are left zero.
	StatusOf(ctx context.Context, unit string, fields Field) (UnitState, error)
}

// Only returns s with the properties outside f zeroed: what a
// FieldReader returns for f.
func (s UnitState) Only(f Field) UnitState {
	var out UnitState
	for _, p := range []struct {
		field Field
		copy  func()
	}{
		{FieldLoadState, func() { out.LoadState = s.LoadState }},
		{FieldActiveState, func() { out.ActiveState = s.ActiveState }},
		{FieldSubState, func() { out.SubState = s.SubState }},
		{FieldFragmentPath, func() { out.FragmentPath = s.FragmentPath }},
		{FieldCanReload, func() { out.CanReload = s.CanReload }},
		{FieldNeedDaemonReload, func() { out.NeedDaemonReload = s.NeedDaemonReload }},
		{FieldActiveEnterMono, func() { out.ActiveEnterMono = s.ActiveEnterMono }},
		{FieldInvocationID, func() { out.InvocationID = s.InvocationID }},
		{FieldDropInPaths, func() { out.DropInPaths = s.DropInPaths }},
		{FieldResult, func() { out.Result = s.Result }},
		{FieldReloadResult, func() { out.ReloadResult = s.ReloadResult }},
		{FieldMainPID, func() { out.MainPID = s.MainPID }},
		{FieldNRestarts, func() { out.NRestarts = s.NRestarts }},
		{FieldStateChangeTime, func() { out.StateChangeTime = s.StateChangeTime }},
	} {
		if f&p.field != 0 {
			p.copy()
		}
	}
	return out
}

// Backend is the part of systemd the steps use. The D-Bus implementation
// (steps.DBus) talks to the system or the user manager through go-systemd;
// unit tests use internal/systemdfake.
type Backend interface {
	DaemonReload(ctx context.Context) error
	// Do enqueues op on unit in mode "replace" and waits for the job's
	// result; a result other than "done" is a *JobError, and every other
	// error an *OpError, both naming op and unit.
	Do(ctx context.Context, op Op, unit string) error
	Status(ctx context.Context, unit string) (UnitState, error)
	Close() error
}

// Errors a Backend wraps so that callers can use errors.Is.
var (
	// ErrNoSuchUnit: systemd has no such unit (org.freedesktop.systemd1.NoSuchUnit).
	ErrNoSuchUnit = errors.New("no such unit")
	// ErrNotApplicable: the job type does not apply to the unit, e.g. a
	// reload of a unit without ExecReload (org.freedesktop.systemd1.JobTypeNotApplicable).
	ErrNotApplicable = errors.New("job type not applicable")
	// ErrConnectionLost: the bus connection dropped while a job was in
	// flight, so its result is unknown. The job may have run: re-read the
	// unit's Status and compare InvocationID (and MainPID) with the
	// snapshot taken before Do to decide whether it happened.
	ErrConnectionLost = errors.New("systemd connection lost")
	// ErrJobTimeout: the job gave no result within the job timeout. The
	// job may still be queued or running in systemd.
	ErrJobTimeout = errors.New("systemd job timed out")
)

// JobError is a job that finished with a result other than "done":
// "failed", "canceled", "timeout", "dependency", "skipped", "invalid", ...
type JobError struct {
	Op     Op
	Unit   string
	Result string
}

func (e *JobError) Error() string {
	return fmt.Sprintf("%s %s: job %s", e.Op, e.Unit, e.Result)
}

// OpError is an error of op on Unit that is not a job result: the call
// failed, the connection was lost, the wait ran out. Backends return it
// (or a *JobError) from Do, so a caller can tell that the error already
// names the operation and the unit without reading its text.
type OpError struct {
	Op   Op
	Unit string
	Err  error
}

func (e *OpError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Unit, e.Err) }
func (e *OpError) Unwrap() error { return e.Err }

// CallError keeps systemd's own message (Err) while matching one of the
// sentinels above (Kind) with errors.Is.
type CallError struct {
	Kind error
	Err  error
}

func (e *CallError) Error() string   { return e.Err.Error() }
func (e *CallError) Unwrap() []error { return []error{e.Kind, e.Err} }

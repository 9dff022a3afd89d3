package steps

import "context"

// Op is a systemd job.
type Op string

const (
	OpStart           Op = "start"
	OpStop            Op = "stop"
	OpRestart         Op = "restart"
	OpReload          Op = "reload"
	OpReloadOrRestart Op = "reload-or-restart"
)

// UnitState is a snapshot of a unit's properties (see ../shared/notes/systemd.md §2).
type UnitState struct {
	LoadState, ActiveState, SubState string
	Result, ReloadResult             string
	FragmentPath, InvocationID       string
	MainPID, NRestarts               uint32
	ActiveEnterMono                  uint64
	CanReload, NeedDaemonReload      bool
	DropInPaths                      []string
}

// Backend is the part of systemd the steps use. The D-Bus implementation
// talks to the system or the user manager through go-systemd; unit tests
// use a fake.
type Backend interface {
	DaemonReload(ctx context.Context) error
	// Do enqueues op on unit in mode "replace" and waits for the job's
	// result; a result other than "done" is an error naming it.
	Do(ctx context.Context, op Op, unit string) error
	Status(ctx context.Context, unit string) (UnitState, error)
	Close() error
}

package planner

import "github.com/zclconf/go-cty/cty"

// DefaultMinFreeSpace is the free space a run's working directories'
// filesystems must have when the plan's defaults set no min_free_space:
// enough for a code snapshot of a typical service and the unit backups,
// events and journal a run writes.
const DefaultMinFreeSpace = 1 << 30

// Needs is what a step needs of the machine it runs on. The step type
// declares it (StepType.Needs); the executor's preflight checks all of it,
// for every selected step, before anything changes. It is data, so the
// executor checks it without knowing the step.
type Needs struct {
	// Programs must be runnable where the step runs.
	Programs []Program
	// Copies are directories whose contents the step copies over another.
	// From must be a directory that is not empty (an empty source copied
	// with --delete empties the target); To, when set, must be an existing
	// directory (a step that creates its target leaves it "").
	Copies []Copy
	// Dirs must exist: the step works in them.
	Dirs []string
	// Units are the systemd units the step acts on: each must be loaded,
	// and its unit file unchanged on disk since systemd loaded it.
	Units []string
}

// Program is one program a step runs.
type Program struct {
	// Name is argv[0]: a bare name is looked up on PATH; a path with a
	// slash is used as it is, a relative one inside Dir.
	Name string
	Dir  string
	// Use says what runs it, for the message ("command", "rollback_command",
	// "health check").
	Use string
}

// Copy is one directory copied over another.
type Copy struct{ From, To string }

// NeedsFunc is the shape of StepType.Needs: what a step with these
// arguments needs, for the service svc (its unit, health check and
// working directory are set).
type NeedsFunc func(args map[string]cty.Value, svc *Service) Needs

// Package steps holds the built-in step types, one file each, with the
// undo of each; the health checks; and the systemd backend.
package steps

import (
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// Types returns the built-in step types for the planner: their argument
// specs, whether --force drops them, and what undoes them.
func Types() map[string]planner.StepType {
	panic("steps.Types: not implemented")
}

// Deps are what built steps need from outside.
type Deps struct {
	Systemd Backend
}

// NewBuilder returns the executor.Builder for the built-in step types.
func NewBuilder(d Deps) executor.Builder {
	panic("steps.NewBuilder: not implemented")
}

package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// reload_or_restart reloads a unit that can reload (no downtime) and
// restarts any other, then proves that the reload or restart happened.
func reloadOrRestartStepType() planner.StepType {
	return planner.StepType{
		Name: TypeReloadOrRestart,
		Spec: hcldec.ObjectSpec{
			"timeout":          &hcldec.AttrSpec{Name: "timeout", Type: cty.String},
			"rollback_timeout": &hcldec.AttrSpec{Name: "rollback_timeout", Type: cty.String},
		},
		Rollback: "stop, then the restore chain, start, verify health",
		Validate: validateDurations("timeout", "rollback_timeout"),
		Estimate: timeoutEstimate(defaultJobTimeout),
	}
}

type reloadOrRestartStep struct{ unitJob }

func (b *builder) buildReloadOrRestart(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	return &reloadOrRestartStep{unitJob: b.unitJob(svc, r)}, nil
}

// TakesTurn: the job is enqueued in the scheduler's order (executor.Turned).
func (s *reloadOrRestartStep) TakesTurn() {}

func (s *reloadOrRestartStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	before, err := s.prepare(ctx, env)
	if err != nil {
		return nil, err
	}
	// The undo is returned even when the job fails: the unit may be left
	// broken, and the rollback must stop it and start the old version.
	u := s.reopenUndo(true)
	if before.CanReload && before.ActiveState == "active" && s.definitionChanged {
		logf(env, "the unit file changed: restarting, since a reload would keep the old definition")
	}
	if before.CanReload && before.ActiveState == "active" && !s.definitionChanged {
		err := s.job(ctx, OpReload)
		if err == nil {
			return u, s.verifyReload(ctx, env, before)
		}
		if !isNotApplicable(err) {
			return u, err
		}
		logf(env, "reload is not applicable (%v); restarting", err)
	}
	return u, s.restart(ctx, env, before)
}

// verifyReload checks that the reload took and the process survived it.
func (s *reloadOrRestartStep) verifyReload(ctx context.Context, env *executor.Env, before UnitState) error {
	after, err := s.sd.Status(ctx, s.unit)
	if err != nil {
		return fmt.Errorf("status of %s after reload: %w", s.unit, err)
	}
	// Older systemd has no ReloadResult; then the other checks decide.
	if after.ReloadResult != "" && after.ReloadResult != "success" {
		return fmt.Errorf("reload of %s failed: ReloadResult is %q", s.unit, after.ReloadResult)
	}
	if !isActive(after.ActiveState) {
		return fmt.Errorf("%s is %s after reload", s.unit, describeState(after))
	}
	if after.MainPID != before.MainPID {
		return fmt.Errorf("reload of %s replaced its main process (MainPID %d→%d): the service crashed or restarted instead of reloading", s.unit, before.MainPID, after.MainPID)
	}
	logf(env, "reloaded (MainPID %d kept)", after.MainPID)
	return nil
}

// isNotApplicable reports systemd's JobTypeNotApplicable ("Job type reload
// is not applicable for unit x.service"): the unit has no ExecReload
// although CanReload said so (an ExecReload removed since the last
// daemon-reload), so a restart is the right fallback.
func isNotApplicable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNotApplicable) {
		return true
	}
	// A backend that does not wrap ErrNotApplicable still passes systemd's
	// message through.
	msg := err.Error()
	return strings.Contains(msg, "JobTypeNotApplicable") || strings.Contains(msg, "is not applicable")
}

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

// stabilize waits `duration` after a restart while watching the unit, so
// that a service that comes up and then crash-loops is caught before the
// rollout moves on, then runs a final health check.
func stabilizeStepType() planner.StepType {
	return planner.StepType{
		Name: TypeStabilize,
		Spec: hcldec.ObjectSpec{
			"duration": &hcldec.AttrSpec{Name: "duration", Type: cty.String, Required: true},
		},
		Check:    true,
		Validate: validateDurations("duration"),
		Estimate: func(args map[string]cty.Value, h *planner.Health) planner.Span {
			d, _ := (&argReader{args: args}).duration("duration")
			var hw time.Duration
			if h != nil {
				hw = healthWorst(*h)
			} else {
				hw = healthWorst(planner.Health{})
			}
			return planner.Span{Typical: d, Worst: d + hw}
		},
	}
}

type stabilizeStep struct {
	unitJob
	duration time.Duration
	poll     time.Duration
}

func (b *builder) buildStabilize(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	d, ok := r.duration("duration")
	if !ok {
		if r.err != nil {
			return nil, r.err
		}
		return nil, errors.New("argument \"duration\" is required")
	}
	poll := b.pollInterval
	if poll <= 0 || poll > time.Second {
		poll = time.Second
	}
	return &stabilizeStep{unitJob: b.unitJob(svc, r), duration: d, poll: poll}, nil
}

func (s *stabilizeStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	// The window opens with the step, not after the first read: under a
	// wave of restarts that read waits its turn in the manager, and the
	// unit is being watched from the moment the step starts anyway.
	window := time.NewTimer(s.duration)
	defer window.Stop()
	base, err := statusOf(ctx, s.sd, s.unit, watchFields)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", s.unit, err)
	}
	if !isActive(base.ActiveState) {
		return nil, fmt.Errorf("%s is %s at the start of stabilization", s.unit, describeState(base))
	}
	logf(env, "watching %s for %s", s.unit, s.duration)
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-window.C:
			done = true
		case <-tick.C:
			st, err := statusOf(ctx, s.sd, s.unit, watchFields)
			if err != nil {
				return nil, fmt.Errorf("status of %s: %w", s.unit, err)
			}
			if err := flapped(s.unit, base, st); err != nil {
				return nil, err
			}
		}
	}
	if err := verifyHealth(ctx, env, s.check, s.health, s.unit, s.sd); err != nil {
		return nil, fmt.Errorf("after %s of stabilization: %w", s.duration, err)
	}
	return nil, nil
}

// watchFields is what flapped compares and describeState shows.
const watchFields = FieldActiveState | FieldSubState | FieldResult | FieldNRestarts | FieldInvocationID

// flapped says how the unit left the state it had when the window opened:
// not active any more, restarted by systemd (NRestarts counts Restart=
// restarts), or running as a new invocation.
func flapped(unit string, base, now UnitState) error {
	switch {
	case !isActive(now.ActiveState):
		return fmt.Errorf("%s became %s during stabilization", unit, describeState(now))
	case now.NRestarts > base.NRestarts:
		return fmt.Errorf("%s was restarted by systemd during stabilization (NRestarts %d→%d): it is crash-looping", unit, base.NRestarts, now.NRestarts)
	case now.InvocationID != base.InvocationID:
		return fmt.Errorf("%s started again during stabilization (InvocationID %s→%s)", unit, displayID(base.InvocationID), displayID(now.InvocationID))
	}
	return nil
}

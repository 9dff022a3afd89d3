package steps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// health_check runs the service's health check, optionally with its own
// timeout, retries and interval. It changes nothing, so it has no undo.
func healthCheckStepType() planner.StepType {
	return planner.StepType{
		Name: TypeHealthCheck,
		Spec: hcldec.ObjectSpec{
			"timeout":  &hcldec.AttrSpec{Name: "timeout", Type: cty.String},
			"retries":  &hcldec.AttrSpec{Name: "retries", Type: cty.Number},
			"interval": &hcldec.AttrSpec{Name: "interval", Type: cty.String},
		},
		Check:    true,
		Validate: validateAll(validateDurations("timeout", "interval"), validateRetries("retries")),
		Estimate: func(args map[string]cty.Value, h *planner.Health) planner.Span {
			// A healthy service passes at once; the worst is every attempt
			// running out of time.
			return planner.Span{Worst: healthWorst(withHealthOverrides(h, &argReader{args: args}))}
		},
	}
}

// withHealthOverrides returns h with a health_check step's timeout,
// retries and interval applied; h may be nil.
func withHealthOverrides(h *planner.Health, r *argReader) planner.Health {
	var out planner.Health
	if h != nil {
		out = *h
	}
	if d, ok := r.duration("timeout"); ok {
		out.Timeout = d
	}
	if d, ok := r.duration("interval"); ok {
		out.Interval = d
	}
	if n, ok := r.integer("retries"); ok {
		out.Retries = n
	}
	return out
}

// healthWorst is the longest a health check can take: every attempt runs
// out of time, with the pause between attempts. Zero fields take the
// defaults, as in CheckHealth.
func healthWorst(h planner.Health) time.Duration {
	h = h.WithDefaults()
	return time.Duration(h.Retries)*h.Timeout + time.Duration(h.Retries-1)*h.Interval
}

type healthCheckStep struct {
	name   string
	unit   string
	health planner.Health
	sd     Backend
	check  healthFunc
}

func (b *builder) buildHealthCheck(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	if n, ok := r.integer("retries"); ok && (n < dsl.MinRetries || n > dsl.MaxRetries) {
		return nil, fmt.Errorf("argument \"retries\": must be from %d to %d, not %d", dsl.MinRetries, dsl.MaxRetries, n)
	}
	base := serviceHealth(svc)
	h := withHealthOverrides(&base, r)
	return &healthCheckStep{name: step.Name, unit: svc.Unit, health: h, sd: b.sd, check: b.checkHealth}, nil
}

func (s *healthCheckStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	h := s.health
	report := attemptFunc(env)
	attempts := 0
	if env != nil && env.Expected > 0 {
		ctx = expectReady(ctx, time.Now().Add(env.Expected))
	}
	err := s.check(ctx, &h, s.unit, s.sd, func(n int) {
		attempts = n
		report(n)
	})
	if err != nil {
		return nil, healthError(s.name, attempts, h.Retries, err)
	}
	return nil, nil
}

// healthError names the check, how many attempts it made and the last
// failure. attempts is what the check reported; CheckHealth's HealthError
// knows better, and when neither says, the configured count is the best
// guess. The error wraps err.
func healthError(name string, attempts, retries int, err error) error {
	last := err
	var he *HealthError
	if errors.As(err, &he) {
		// Its own text repeats the count; the last failure is what a
		// person needs.
		attempts, last = he.Attempts, he.Err
	}
	if attempts == 0 {
		attempts = retries
	}
	noun := "attempts"
	if attempts == 1 {
		noun = "attempt"
	}
	return &wrappedError{msg: fmt.Sprintf("health check %q failed after %d %s: %v", name, attempts, noun, last), err: err}
}

// wrappedError is an error with its own message that still unwraps to
// the error it was made from.
type wrappedError struct {
	msg string
	err error
}

func (e *wrappedError) Error() string { return e.msg }
func (e *wrappedError) Unwrap() error { return e.err }

// verifyHealth is the health check that ends a Reopen and a stabilize
// window: the service's own check, against unit.
func verifyHealth(ctx context.Context, env *executor.Env, check healthFunc, h planner.Health, unit string, sd Backend) error {
	report := attemptFunc(env)
	attempts := 0
	err := check(ctx, &h, unit, sd, func(n int) {
		attempts = n
		report(n)
	})
	if err != nil {
		return healthError(unit, attempts, h.Retries, err)
	}
	return nil
}

// withTimeout is context.WithTimeout that treats d <= 0 as no deadline.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

package steps

import (
	"context"
	"errors"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// haproxy_ready puts a server back into HAProxy's traffic after its
// service was verified: `set server BACKEND/SERVER state ready`, then a
// wait (bounded by timeout) until HAProxy reports it up, so that the next
// instance is never drained while this one is still out. Its undo drains
// the server again, before the rollback stops the service.
func haproxyReadyStepType() planner.StepType {
	return planner.StepType{
		Name:       TypeHAProxyReady,
		Spec:       haproxySpec(nil),
		Rollback:   "drains the server again (before the rollback stops the service)",
		Validate:   validateAll(validateHAProxy, validateDurations("timeout")),
		Estimate:   timeoutEstimate(defaultHAProxyTimeout),
		Traffic:    haproxyTraffic(false),
		NotOnHosts: notOnHostsHAProxy,
		OnHosts:    haproxyOnHosts,
	}
}

type haproxyReadyStep struct{ haproxyTarget }

func (b *builder) buildHAProxyReady(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &haproxyReadyStep{haproxyTarget: b.haproxyTarget(r)}
	if s.api.addr == "" || s.backend == "" || s.server == "" {
		return nil, errors.New("socket, backend and server must not be empty")
	}
	return s, nil
}

func (s *haproxyReadyStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	if _, _, err := s.api.server(ctx, s.backend, s.server); err != nil {
		return nil, err
	}
	u := &haproxyRedrain{haproxyTarget: s.haproxyTarget}
	return u, s.ready(ctx, env)
}

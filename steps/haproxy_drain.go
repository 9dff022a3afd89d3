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

// haproxy_drain takes a server out of HAProxy's traffic before its service
// stops: `set server BACKEND/SERVER state drain` on the runtime API, then
// a wait (bounded by timeout) until its sessions and queue are empty. Its
// undo puts the server back to ready, after the rollback has the service
// running and verified again.
func haproxyDrainStepType() planner.StepType {
	return planner.StepType{
		Name: TypeHAProxyDrain,
		Spec: haproxySpec(hcldec.ObjectSpec{
			// allow_last lets the step drain the last server of the
			// backend that is in traffic: an outage, so it is refused
			// unless asked for.
			"allow_last": &hcldec.AttrSpec{Name: "allow_last", Type: cty.Bool},
		}),
		Rollback:   "sets the server to ready after the service is back, waits until HAProxy sees it up",
		Validate:   validateAll(validateHAProxy, validateDurations("timeout")),
		Estimate:   timeoutEstimate(defaultHAProxyTimeout),
		Traffic:    haproxyTraffic(true),
		NotOnHosts: notOnHostsHAProxy,
		OnHosts:    haproxyOnHosts,
	}
}

type haproxyDrainStep struct {
	haproxyTarget
	allowLast bool
}

func (b *builder) buildHAProxyDrain(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &haproxyDrainStep{haproxyTarget: b.haproxyTarget(r)}
	s.allowLast, _ = r.boolean("allow_last")
	if s.api.addr == "" || s.backend == "" || s.server == "" {
		return nil, errors.New("socket, backend and server must not be empty")
	}
	return s, nil
}

func (s *haproxyDrainStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	me, others, err := s.api.server(ctx, s.backend, s.server)
	if err != nil {
		return nil, err
	}
	if me.heldOut() {
		// Someone took it out on purpose; putting it back to ready on
		// rollback would undo their decision.
		logf(env, "%s is already %s: left as it is", s.haproxyTarget, me.Status)
		return nil, s.waitDrained(ctx, env)
	}
	if !s.allowLast {
		var up []string
		for _, o := range others {
			if o.inTraffic() {
				up = append(up, o.Name)
			}
		}
		if len(up) == 0 {
			return nil, fmt.Errorf("refusing to drain %s: no other server of backend %q is in traffic (%s), so every request would fail; wait until the others are up, or set allow_last = true to accept the outage",
				s.haproxyTarget, s.backend, describeServers(others))
		}
	}
	logf(env, "%s: drain (was %s, %d sessions)", s.haproxyTarget, me.Status, me.Sessions)
	u := &haproxyReadmit{haproxyTarget: s.haproxyTarget}
	if err := s.drain(ctx, env); err != nil {
		// The state may have changed before the error: put it back.
		return u, err
	}
	return u, nil
}

func describeServers(list []haproxyServer) string {
	if len(list) == 0 {
		return "it has no other server"
	}
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = s.Name + " " + s.Status
	}
	return strings.Join(parts, ", ")
}

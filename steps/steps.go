// Package steps holds the built-in step types, one file each, with the
// undo of each; the health checks; and the systemd backend.
package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// Step type names.
const (
	TypeHealthCheck     = "health_check"
	TypeBackupUnit      = "backup_unit"
	TypeRsync           = "rsync"
	TypeRelease         = "release"
	TypeSwitchRelease   = "switch_release"
	TypeExec            = "exec"
	TypeReloadOrRestart = "reload_or_restart"
	TypeRestart         = "restart"
	TypeStart           = "start"
	TypeStop            = "stop"
	TypeStabilize       = "stabilize"
	TypeHAProxyDrain    = "haproxy_drain"
	TypeHAProxyReady    = "haproxy_ready"
	TypeNginxUpstream   = "nginx_upstream"
)

// Types returns the built-in step types for the planner: their argument
// specs, whether --force drops them, and what undoes them.
func Types() map[string]planner.StepType {
	types := []planner.StepType{
		healthCheckStepType(),
		backupUnitStepType(),
		rsyncStepType(),
		releaseStepType(),
		switchReleaseStepType(),
		execStepType(),
		reloadOrRestartStepType(),
		unitJobStepType(TypeRestart),
		unitJobStepType(TypeStart),
		unitJobStepType(TypeStop),
		stabilizeStepType(),
		haproxyDrainStepType(),
		haproxyReadyStepType(),
		nginxUpstreamStepType(),
		blueGreenStepType(),
	}
	m := make(map[string]planner.StepType, len(types))
	for _, t := range types {
		if t.Needs == nil {
			t.Needs = needsFuncs[t.Name]
		}
		m[t.Name] = t
	}
	return m
}

// notOnHostsLB is why the load balancer steps refuse instances on hosts:
// their socket or configuration path is read on the machine rollout runs
// on, and a template naming each instance's server does not exist yet.
const notOnHostsLB = "its load balancer's socket or configuration is a path on the machine rollout runs on"

// notOnHostsHAProxy says why an HAProxy step with a unix socket does not
// run on hosts, and what does.
const notOnHostsHAProxy = "its admin socket is a path on the machine rollout runs on. Give HAProxy's runtime API as a TCP address instead (HAProxy: `stats socket ipv4@10.0.0.5:9999 level admin`; the step: `socket = \"10.0.0.5:9999\"`), which rollout reaches from the controller as it does an http health check, and name each instance's server with host.name (`server = \"api_${host.name}\"`)"

// haproxyOnHosts: HAProxy's runtime API at a TCP address is reached from
// the controller wherever the instance runs; a unix socket path is not.
func haproxyOnHosts(args map[string]cty.Value) bool {
	s, ok := knownString(args, "socket")
	if !ok {
		return false
	}
	network, _, err := haproxyNetwork(s)
	return err == nil && network == "tcp"
}

// noSystemd are the step types that build without a systemd backend.
var noSystemd = map[string]bool{
	TypeExec: true, TypeRsync: true, TypeRelease: true, TypeSwitchRelease: true,
	TypeHAProxyDrain: true, TypeHAProxyReady: true, TypeNginxUpstream: true,
}

// Deps are what built steps need from outside.
type Deps struct {
	// Systemd is the local manager, for services without hosts.
	Systemd Backend
	// Hosts gives the Host of an instance on a host of the plan (an SSH
	// host from a HostSet); nil when the plan has no hosts.
	Hosts func(*planner.Host) (Host, error)
}

// healthFunc is the signature of CheckHealth. The builder holds it as a
// field so that unit tests can script health results without a server.
type healthFunc func(ctx context.Context, h *planner.Health, unit string, sd Backend, attempt func(int)) error

// defaultJobTimeout bounds a systemd job (and the undo's job) when the step
// sets no timeout: systemd's own defaults (TimeoutStartSec=90s, job timeout
// infinity) can leave a job queued forever.
const defaultJobTimeout = 5 * time.Minute

// builder builds steps. Its fields beyond sd exist for tests.
type builder struct {
	sd Backend
	// host is where the step acts; build sets it (and sd, its manager)
	// per instance on a copy of the builder.
	host        Host
	hosts       func(*planner.Host) (Host, error)
	checkHealth healthFunc
	// pollInterval is how often stabilize reads the unit's state.
	pollInterval time.Duration
}

// NewBuilder returns the executor.Builder for the built-in step types.
func NewBuilder(d Deps) executor.Builder {
	b := &builder{sd: d.Systemd, hosts: d.Hosts, checkHealth: CheckHealth, pollInterval: time.Second}
	return b.build
}

// forService returns a copy of b acting on svc's host.
func (b *builder) forService(svc *planner.Service) (*builder, error) {
	bb := *b
	if svc.Host == nil {
		if bb.host == nil || bb.host.Name() != "" {
			bb.host = Local{SD: b.sd}
		}
		return &bb, nil
	}
	if b.hosts == nil {
		return nil, fmt.Errorf("service %q runs on host %q, but no hosts are reachable in this run", svc.Name, svc.Host.Name)
	}
	h, err := b.hosts(svc.Host)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", svc.Host.Name, err)
	}
	bb.host = h
	bb.sd = h.Systemd()
	return &bb, nil
}

func (b *builder) build(svc *planner.Service, step *planner.Step) (executor.Step, error) {
	if svc == nil || step == nil {
		return nil, errors.New("steps: build called without a service or step")
	}
	b, err := b.forService(svc)
	if err != nil {
		return nil, err
	}
	if st := Types()[step.Type]; b.host.Name() != "" && st.NotOnHosts != "" && (st.OnHosts == nil || !st.OnHosts(step.Args)) {
		why := st.NotOnHosts
		// The planner refuses these (StepType.NotOnHosts); this guards a
		// plan built without the check, which would act on the wrong machine.
		return nil, fmt.Errorf("step %q (%s) of %q does not run on host %s: %s", step.Name, step.Type, svc.Name, b.host.Name(), why)
	}
	needsSystemd := !noSystemd[step.Type]
	if needsSystemd && b.sd == nil {
		return nil, fmt.Errorf("step %q of service %q: no systemd backend", step.Name, svc.Name)
	}
	r := &argReader{args: step.Args}
	var s executor.Step
	switch step.Type {
	case TypeHealthCheck:
		s, err = b.buildHealthCheck(svc, step, r)
	case TypeBackupUnit:
		s, err = b.buildBackupUnit(svc, step, r)
	case TypeRsync:
		s, err = b.buildRsync(svc, step, r)
	case TypeRelease:
		s, err = b.buildRelease(svc, step, r)
	case TypeSwitchRelease:
		s, err = b.buildSwitchRelease(svc, step, r)
	case TypeExec:
		s, err = b.buildExec(svc, step, r)
	case TypeReloadOrRestart:
		s, err = b.buildReloadOrRestart(svc, step, r)
	case TypeRestart, TypeStart, TypeStop:
		s, err = b.buildUnitJob(svc, step, r)
	case TypeStabilize:
		s, err = b.buildStabilize(svc, step, r)
	case TypeHAProxyDrain:
		s, err = b.buildHAProxyDrain(svc, step, r)
	case TypeHAProxyReady:
		s, err = b.buildHAProxyReady(svc, step, r)
	case TypeNginxUpstream:
		s, err = b.buildNginxUpstream(svc, step, r)
	case TypeBlueGreen:
		s, err = b.buildBlueGreen(svc, step, r)
	default:
		// The planner rejects unknown types; this guards a mismatch
		// between the planner's type list and this switch.
		return nil, fmt.Errorf("step %q of service %q: unknown step type %q", step.Name, svc.Name, step.Type)
	}
	if r.err != nil {
		// The reader's error is the cause of any later one.
		err = r.err
	}
	if err != nil {
		return nil, fmt.Errorf("step %q (%s) of service %q: %w", step.Name, step.Type, svc.Name, err)
	}
	return s, nil
}

// serviceHealth returns a copy of the service's health check, so that a
// step's overrides never leak into the shared plan.
func serviceHealth(svc *planner.Service) planner.Health {
	if svc.Health == nil {
		// The planner never leaves Health nil; fall back to its default
		// rather than crash.
		return planner.DefaultHealth()
	}
	return *svc.Health
}

// stepUnit is the step's `unit` argument, or the service's unit.
func stepUnit(svc *planner.Service, r *argReader) string {
	if u, ok := r.str("unit"); ok && u != "" {
		return u
	}
	return svc.Unit
}

func logf(env *executor.Env, format string, args ...any) {
	if env != nil && env.Logf != nil {
		env.Logf(format, args...)
	}
}

// attemptFunc returns env.Attempt, or a no-op when the executor set none.
func attemptFunc(env *executor.Env) func(int) {
	if env != nil && env.Attempt != nil {
		return env.Attempt
	}
	return func(int) {}
}

func forced(env *executor.Env) bool { return env != nil && env.Force }

// argReader reads step arguments, treating absent and null as unset. The
// planner has already checked types against the spec; the reader still
// converts and checks, so that a mismatch is an error instead of a panic.
// It keeps the first error.
type argReader struct {
	args map[string]cty.Value
	err  error
}

func (r *argReader) fail(name string, format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("argument %q: %s", name, fmt.Sprintf(format, a...))
	}
}

// value returns the argument converted to ty, or false when it is unset.
func (r *argReader) value(name string, ty cty.Type) (cty.Value, bool) {
	v, ok := r.args[name]
	if !ok || v == cty.NilVal {
		return cty.NilVal, false
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return cty.NilVal, false
	}
	if !v.IsWhollyKnown() {
		r.fail(name, "value is not known when the plan is compiled")
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		r.fail(name, "%s", err)
		return cty.NilVal, false
	}
	if cv.IsNull() {
		return cty.NilVal, false
	}
	return cv, true
}

func (r *argReader) str(name string) (string, bool) {
	v, ok := r.value(name, cty.String)
	if !ok {
		return "", false
	}
	return v.AsString(), true
}

func (r *argReader) boolean(name string) (bool, bool) {
	v, ok := r.value(name, cty.Bool)
	if !ok {
		return false, false
	}
	return v.True(), true
}

func (r *argReader) integer(name string) (int, bool) {
	v, ok := r.value(name, cty.Number)
	if !ok {
		return 0, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		r.fail(name, "must be a whole number, not %s", bf.Text('g', -1))
		return 0, false
	}
	n, acc := bf.Int64()
	if acc != 0 || n > 1<<31 || n < -(1<<31) {
		r.fail(name, "%s is out of range", bf.Text('g', -1))
		return 0, false
	}
	return int(n), true
}

func (r *argReader) duration(name string) (time.Duration, bool) {
	s, ok := r.str(name)
	if !ok {
		return 0, false
	}
	d, err := dsl.ParseDuration(s)
	if err != nil {
		r.fail(name, "%v", err)
		return 0, false
	}
	return d, true
}

func (r *argReader) strList(name string) ([]string, bool) {
	v, ok := r.value(name, cty.List(cty.String))
	if !ok {
		return nil, false
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			r.fail(name, "element %d is null", len(out))
			return nil, false
		}
		out = append(out, e.AsString())
	}
	return out, true
}

func (r *argReader) strMap(name string) (map[string]string, bool) {
	v, ok := r.value(name, cty.Map(cty.String))
	if !ok {
		return nil, false
	}
	out := make(map[string]string, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if e.IsNull() {
			r.fail(name, "element %q is null", k.AsString())
			return nil, false
		}
		out[k.AsString()] = e.AsString()
	}
	return out, true
}

// validator is the shape of planner.StepType.Validate.
type validator = func(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics

func validateAll(vs ...validator) validator {
	return func(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
		var diags hcl.Diagnostics
		for _, v := range vs {
			diags = append(diags, v(args, rng)...)
		}
		return diags
	}
}

// knownArg returns the argument when it is set and known; an unknown value
// cannot be validated yet and is left to the builder.
func knownArg(args map[string]cty.Value, name string) (cty.Value, bool) {
	v, ok := args[name]
	if !ok || v == cty.NilVal {
		return cty.NilVal, false
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

func knownString(args map[string]cty.Value, name string) (string, bool) {
	v, ok := knownArg(args, name)
	if !ok {
		return "", false
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() {
		return "", false
	}
	return s.AsString(), true
}

func validateDurations(names ...string) validator {
	return func(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
		var diags hcl.Diagnostics
		for _, name := range names {
			s, ok := knownString(args, name)
			if !ok {
				continue
			}
			if _, err := dsl.ParseDuration(s); err != nil {
				diags = append(diags, dsl.InvalidDuration(name, err, rng(name)))
			}
		}
		return diags
	}
}

// validateRetries checks a number of attempts under the plan language's
// rule (dsl.MinRetries to dsl.MaxRetries), as a health block's retries.
func validateRetries(name string) validator {
	return func(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
		v, ok := knownArg(args, name)
		if !ok {
			return nil
		}
		n, err := convert.Convert(v, cty.Number)
		if err != nil || n.IsNull() {
			return nil
		}
		bf := n.AsBigFloat()
		if i, acc := bf.Int64(); !bf.IsInt() || acc != 0 || i < dsl.MinRetries || i > dsl.MaxRetries {
			return hcl.Diagnostics{invalidArg(rng(name), "Invalid "+strings.ReplaceAll(name, "_", " ")+" count",
				fmt.Sprintf("The %s argument must be a whole number from %d to %d, but it is %s. Give the number of attempts, such as 3.", name, dsl.MinRetries, dsl.MaxRetries, bf.Text('g', -1)))}
		}
		return nil
	}
}

// validateArgv checks a list(string) command: when set it must have at
// least one element and a non-empty program name.
func validateArgv(name string) validator {
	return func(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
		v, ok := knownArg(args, name)
		if !ok || !v.CanIterateElements() {
			return nil
		}
		if v.LengthInt() == 0 {
			return hcl.Diagnostics{invalidArg(rng(name), "Empty command",
				fmt.Sprintf("The %s argument is an empty list, so there is nothing to run. Give the program and its arguments, such as [\"npx\", \"prisma\", \"migrate\", \"deploy\"].", name))}
		}
		it := v.ElementIterator()
		it.Next()
		_, first := it.Element()
		if first.IsNull() || !first.IsKnown() || first.Type() != cty.String || first.AsString() == "" {
			return hcl.Diagnostics{invalidArg(rng(name), "Empty command",
				fmt.Sprintf("The first element of %s names the program to run and must not be empty. Give the program's name or path.", name))}
		}
		return nil
	}
}

func invalidArg(subject hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: subject.Ptr()}
}

package planner

import (
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/rollout-sh/rollout/dsl"
)

// checkCanaries reports canaries that cannot work, for every service
// (selected or not, so that plan validate sees them): a canary on a
// service with one instance has nothing to promote to, and a canary as
// large as the service is a restart of everything with extra waiting.
func (c *compiler) checkCanaries() {
	for i, svc := range c.services {
		cn := svc.Canary
		if cn == nil {
			continue
		}
		n := max(len(c.hostsOf[i]), 1) * max(len(svc.Instances), 1)
		if n < 2 {
			c.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Canary on a single instance",
				Detail: fmt.Sprintf("Service %q has a canary but runs as one instance, so after the canary there is nothing left to promote to, and the canary is an in-place restart. "+
					"Give the service instances (a template unit with instances = [...]) or several hosts, or remove the canary block.", svc.Name),
				Subject: rangePtr(cn.DeclRange, svc.DeclRange),
			})
			continue
		}
		if k := cn.Count.Of(n); k >= n {
			c.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Canary as large as the service",
				Detail: fmt.Sprintf("The canary of service %q is %s of its %d instances, which is all of them: every instance would run the new release before the canary is judged, and none would be left on the old one. "+
					"Make count smaller than %d, such as 1 or \"25%%\".", svc.Name, plural(k, "instance"), n, n),
				Subject: rangePtr(cn.CountRange, cn.DeclRange),
			})
		}
	}
}

// canary builds the canary phase of svc: canaries restart first, rest
// after the promotion. Its checks are each canary's health check, then
// every analysis, resolved per canary instance (or once when the analysis
// reads nothing of the instance and runs on the controller).
func (c *compiler) canary(svc *dsl.Service, canaries, rest []*Service) *Canary {
	cn := svc.Canary
	out := &Canary{
		Service:        svc.Name,
		Observe:        cn.Observe,
		Interval:       cn.Interval,
		AutoPromote:    cn.AutoPromote,
		PromoteTimeout: cn.PromoteTimeout,
		FailureLimit:   cn.FailureLimit,
		DeclRange:      cn.DeclRange,
	}
	for _, inst := range canaries {
		out.Canaries = append(out.Canaries, inst.Name)
	}
	for _, inst := range rest {
		out.Rest = append(out.Rest, inst.Name)
	}
	for _, inst := range canaries {
		out.Checks = append(out.Checks, &Check{Kind: CheckHealth, Instance: inst.Name, Timeout: inst.Health.Timeout, DeclRange: svc.DeclRange})
	}
	for _, a := range cn.Analyses {
		perInstance := a.URLExpr != nil || a.CommandExpr != nil || a.Kind == dsl.AnalysisExec
		for _, inst := range canaries {
			ch := &Check{
				Kind:         a.Kind,
				URL:          a.URL,
				ExpectStatus: a.ExpectStatus,
				JSONPath:     a.JSONPath,
				Max:          a.Max,
				Min:          a.Min,
				Command:      slices.Clone(a.Command),
				Timeout:      a.Timeout,
				DeclRange:    a.DeclRange,
			}
			if !perInstance {
				out.Checks = append(out.Checks, ch)
				break
			}
			ch.Instance = inst.Name
			ctx := c.instanceContext(svc, c.hosts[inst.HostName()], dsl.Instance{Name: inst.Instance, Index: inst.InstanceIndex, Port: inst.Port})
			if a.URLExpr != nil {
				if s, ok := c.evalString(a.URLExpr, ctx); ok {
					ch.URL = s
				}
			}
			if a.CommandExpr != nil {
				if l, ok := c.evalStrings(a.CommandExpr, ctx); ok {
					ch.Command = l
				}
			}
			out.Checks = append(out.Checks, ch)
		}
	}
	return out
}

func (c *compiler) evalString(expr hcl.Expression, ctx *hcl.EvalContext) (string, bool) {
	v, diags := expr.Value(ctx)
	c.add(diags...)
	if diags.HasErrors() {
		return "", false
	}
	v, _ = v.UnmarkDeep()
	sv, err := convert.Convert(v, cty.String)
	if err != nil || sv.IsNull() || !sv.IsWhollyKnown() {
		return "", false
	}
	return sv.AsString(), true
}

func (c *compiler) evalStrings(expr hcl.Expression, ctx *hcl.EvalContext) ([]string, bool) {
	v, diags := expr.Value(ctx)
	c.add(diags...)
	if diags.HasErrors() {
		return nil, false
	}
	v, _ = v.UnmarkDeep()
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || lv.IsNull() || !lv.IsWhollyKnown() {
		return nil, false
	}
	var out []string
	for _, e := range lv.AsValueSlice() {
		if !e.IsNull() {
			out = append(out, e.AsString())
		}
	}
	return out, true
}

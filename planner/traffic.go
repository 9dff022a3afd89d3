package planner

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// checkTrafficRestored refuses a pipeline that takes its service out of a
// load balancer's traffic (haproxy_drain, nginx_upstream down) without a
// later step putting it back: every run that succeeds would leave the
// instance out, and a rolling restart would end with none in traffic. It
// is reported once per step, naming the services it applies to.
func (c *compiler) checkTrafficRestored(services []*Service, selected []bool) {
	type open struct {
		step     *Step
		hint     string
		services []string
	}
	byStep := map[hcl.Range]*open{}
	var order []hcl.Range
	for i, svc := range services {
		if svc == nil || i >= len(selected) || !selected[i] {
			continue
		}
		out := map[string]*Step{}
		var outOrder []string
		hints := map[string]string{}
		for _, st := range svc.Steps {
			t := c.opts.StepTypes[st.Type].Traffic
			if t == nil {
				continue
			}
			m, ok := t(st.Args)
			if !ok {
				continue
			}
			if m.Out {
				if out[m.Key] == nil {
					outOrder = append(outOrder, m.Key)
				}
				out[m.Key], hints[m.Key] = st, m.Hint
			} else {
				delete(out, m.Key)
			}
		}
		for _, k := range outOrder {
			st := out[k]
			if st == nil {
				continue
			}
			o := byStep[st.DeclRange]
			if o == nil {
				o = &open{step: st, hint: hints[k]}
				byStep[st.DeclRange] = o
				order = append(order, st.DeclRange)
			}
			o.services = append(o.services, svc.Name)
		}
	}
	for _, rng := range order {
		o := byStep[rng]
		names := fmt.Sprintf("%q", o.services[0])
		if n := len(o.services); n > 1 {
			names = fmt.Sprintf("%q and %d more", o.services[0], n-1)
		}
		r := rng
		c.add(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Taken out of traffic for good",
			Detail: fmt.Sprintf("Step %q (%s) takes %s out of the load balancer's traffic, but no later step of the pipeline puts it back, "+
				"so every successful run would leave it out. %s",
				o.step.Name, o.step.Type, names, o.hint),
			Subject: &r,
		})
	}
}

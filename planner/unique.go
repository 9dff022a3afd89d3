package planner

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// checkUniqueArgs reports a step argument that resolves to the same value
// for several selected services when its type says it must differ
// (StepType.UniqueArgs), such as `--deploy --deploy-path DIR` on a plan of
// several services whose pipeline deploys from run.deploy_path: that would
// put one release into every service's working directory.
func (c *compiler) checkUniqueArgs(services []*Service, selected []bool) {
	type key struct{ step, arg, value string }
	type use struct {
		step     *Step
		services []string
	}
	uses := map[key]*use{}
	var order []key
	for i, svc := range services {
		if svc == nil || i >= len(selected) || !selected[i] {
			continue
		}
		for _, st := range svc.Steps {
			for _, arg := range c.opts.StepTypes[st.Type].UniqueArgs {
				v, ok := st.Args[arg]
				if !ok || v.IsNull() || !v.IsKnown() || v.Type() != cty.String || v.AsString() == "" {
					continue
				}
				k := key{st.Name, arg, v.AsString()}
				if uses[k] == nil {
					uses[k] = &use{step: st}
					order = append(order, k)
				}
				uses[k].services = append(uses[k].services, svc.Name)
			}
		}
	}
	for _, k := range order {
		u := uses[k]
		if len(u.services) < 2 {
			continue
		}
		var names []string
		for _, n := range u.services[:min(len(u.services), 5)] {
			names = append(names, fmt.Sprintf("%q", n))
		}
		more := ""
		if len(u.services) > 5 {
			more = fmt.Sprintf(" and %d more", len(u.services)-5)
		}
		rng := u.step.DeclRange
		c.add(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Same %q for several services", k.arg),
			Detail: fmt.Sprintf("Step %q (%s) resolves %q to %q for %d services (%s%s), but it must differ for each service, "+
				"or one service's files would overwrite another's. Select one service with --service NAME, "+
				"or make %q differ per service, for example with \"${service.name}\" in it.",
				k.step, u.step.Type, k.arg, k.value, len(u.services), strings.Join(names, ", "), more, k.arg),
			Subject: &rng,
		})
	}
}

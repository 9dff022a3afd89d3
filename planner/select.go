package planner

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner/dag"
)

// selectServices picks the plan block and the selected services (by index
// into c.services, in declaration order). The plan block is nil when the
// config declares none.
func (c *compiler) selectServices(g *dag.Graph, acyclic bool) (*dsl.Plan, []bool) {
	block, ok := c.choosePlan()
	if !ok {
		return nil, nil
	}
	selected := make([]bool, len(c.services))
	if block == nil || selectionEmpty(block.Select) {
		for i := range selected {
			selected[i] = true
		}
	} else {
		c.applySelect(block, selected)
	}
	if len(c.opts.Services) > 0 {
		narrowed := make([]bool, len(c.services))
		for _, name := range c.opts.Services {
			i, ok := c.serviceIndex[name]
			switch {
			case !ok:
				c.add(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Unknown service",
					Detail: fmt.Sprintf("There is no service %q to select with --service.%s",
						name, dsl.DidYouMean(name, c.serviceNames)),
				})
			case !selected[i]:
				c.add(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Service not in plan",
					Detail: fmt.Sprintf("Plan %q does not select service %q. Drop --service %q, or choose a plan that selects it with --plan NAME.",
						block.Name, name, name),
				})
			default:
				narrowed[i] = true
			}
		}
		selected = narrowed
	}
	if c.opts.WithDependents && acyclic {
		for i, svc := range c.services {
			if !selected[i] {
				continue
			}
			for _, name := range g.DependentsOf(svc.Name) {
				selected[c.serviceIndex[name]] = true
			}
		}
	}
	return block, selected
}

// choosePlan finds the plan block: --plan NAME, else the root file's only
// plan block, else the config's only plan block, else none. It reports false
// after an error.
func (c *compiler) choosePlan() (*dsl.Plan, bool) {
	var all, inRoot []*dsl.Plan
	root := filepath.Clean(c.cfg.Root)
	for _, p := range c.cfg.Plans {
		if p == nil {
			continue
		}
		all = append(all, p)
		if filepath.Clean(p.DeclRange.Filename) == root {
			inRoot = append(inRoot, p)
		}
	}
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = p.Name
	}
	if c.opts.PlanName != "" {
		for _, p := range all {
			if p.Name == c.opts.PlanName {
				return p, true
			}
		}
		detail := fmt.Sprintf("There is no plan %q.%s", c.opts.PlanName, dsl.DidYouMean(c.opts.PlanName, names))
		if len(names) > 0 {
			detail += fmt.Sprintf(" Declared plans: %s.", quoteList(names))
		} else {
			detail += " The configuration declares no plan block; leave out --plan to select every service."
		}
		c.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown plan", Detail: detail})
		return nil, false
	}
	switch {
	case len(inRoot) == 1:
		return inRoot[0], true
	case len(inRoot) == 0 && len(all) == 1:
		return all[0], true
	case len(all) == 0:
		return nil, true
	}
	c.add(&hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Several plans",
		Detail:   fmt.Sprintf("The configuration declares several plans (%s). Choose one with --plan NAME.", quoteList(names)),
	})
	return nil, false
}

func selectionEmpty(s dsl.Selection) bool {
	return len(s.Names) == 0 && len(s.Types) == 0 && len(s.Tags) == 0
}

// applySelect marks the services the plan block's select matches: any
// listed name, type or tag.
func (c *compiler) applySelect(block *dsl.Plan, selected []bool) {
	sel := block.Select
	for _, name := range sel.Names {
		if i, ok := c.serviceIndex[name]; ok {
			selected[i] = true
			continue
		}
		c.add(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown service in select",
			Detail: fmt.Sprintf("Plan %q selects service %q, which is not declared.%s",
				block.Name, name, dsl.DidYouMean(name, c.serviceNames)),
			Subject: rangePtr(sel.Range, block.DeclRange),
		})
	}
	for i, svc := range c.services {
		if selected[i] {
			continue
		}
		if slices.Contains(sel.Types, svc.Type) {
			selected[i] = true
			continue
		}
		for _, tag := range svc.Tags {
			if slices.Contains(sel.Tags, tag) {
				selected[i] = true
				break
			}
		}
	}
}

// order builds the Plan from the selected services: Needs through
// unselected intermediates, topological order by declaration, waves.
func (c *compiler) order(block *dsl.Plan, services []*Service, selected []bool) *Plan {
	plan := &Plan{
		Name:        strings.TrimSuffix(filepath.Base(c.cfg.Root), filepath.Ext(c.cfg.Root)),
		File:        c.cfg.Root,
		MaxParallel: 1,
		OnFailure:   dsl.OnFailureAbort,
		DeclRange: hcl.Range{
			Filename: c.cfg.Root,
			Start:    hcl.InitialPos,
			End:      hcl.InitialPos,
		},
	}
	if c.cfg.Defaults.EventsLogSet {
		plan.EventsLog = c.cfg.Defaults.EventsLog
	}
	plan.Notifications = notifications(c.cfg.Notifications)
	plan.MinFreeSpace = DefaultMinFreeSpace
	if c.cfg.Defaults.MinFreeSpaceSet {
		plan.MinFreeSpace = c.cfg.Defaults.MinFreeSpace
	}
	if block != nil {
		plan.Name = block.Name
		plan.DeclRange = block.DeclRange
		if block.MaxParallelSet {
			plan.MaxParallel = block.MaxParallel
		}
		if block.OnFailure != "" {
			plan.OnFailure = block.OnFailure
		}
		plan.MaxFailures = block.MaxFailures
		for _, b := range block.Batches {
			if b == nil {
				continue
			}
			plan.Batches = append(plan.Batches, Batch{
				Types:          slices.Clone(b.Types),
				Tags:           slices.Clone(b.Tags),
				MaxUnavailable: b.MaxUnavailable,
			})
		}
	}
	if c.opts.ParallelSet {
		plan.MaxParallel = c.opts.Parallel
	}

	g := dag.New(len(services))
	for i, svc := range services {
		if selected[i] {
			g.Add(svc.Name)
		}
	}
	needs := c.needs(selected)
	for i, svc := range services {
		if !selected[i] {
			continue
		}
		svc.Needs = needs[i]
		for _, n := range svc.Needs {
			g.Connect(n, svc.Name)
		}
	}
	// The graph holds the services in declaration order, so its
	// insertion-order tie break is the declaration order.
	order, err := g.TopologicalOrder(nil)
	if err != nil {
		// Cycles were reported and stop Compile before here.
		panic("planner: cycle in a validated dependency graph")
	}
	waves, _ := g.Waves()
	plan.Order = order
	plan.Waves = waves
	for w, wave := range waves {
		for _, name := range wave {
			services[c.serviceIndex[name]].Wave = w
		}
	}
	plan.Services = make([]*Service, len(order))
	for i, name := range order {
		plan.Services[i] = services[c.serviceIndex[name]]
	}
	return plan
}

// needs returns, per selected service, the selected services it waits for:
// its selected dependencies, and through an unselected dependency whatever
// that one waits for, so a → b → c with b unselected gives a Needs [c].
// Each list is in declaration order.
func (c *compiler) needs(selected []bool) [][]string {
	// frontier memoizes, per unselected service, the selected services
	// reachable through unselected ones.
	frontier := make([][]int, len(c.services))
	done := make([]bool, len(c.services))
	var reach func(i int, visiting []bool) []int
	reach = func(i int, visiting []bool) []int {
		if done[i] {
			return frontier[i]
		}
		var out []int
		visiting[i] = true
		for _, j := range c.deps[i] {
			if visiting[j] {
				continue
			}
			if selected[j] {
				out = append(out, j)
			} else {
				out = append(out, reach(j, visiting)...)
			}
		}
		visiting[i] = false
		slices.Sort(out)
		out = slices.Compact(out)
		frontier[i], done[i] = out, true
		return out
	}
	visiting := make([]bool, len(c.services))
	result := make([][]string, len(c.services))
	for i := range c.services {
		if !selected[i] {
			continue
		}
		for _, j := range reach(i, visiting) {
			result[i] = append(result[i], c.services[j].Name)
		}
	}
	return result
}

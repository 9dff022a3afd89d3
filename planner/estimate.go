package planner

import (
	"slices"
	"time"

	"github.com/rollout-sh/rollout/planner/dag"
)

// Estimate is how long a plan takes, for reviewers, from each step type's
// own estimate (StepType.Estimate): typically, and at worst when every
// health check uses all its retries and every command its whole timeout.
type Estimate struct {
	// Services maps each selected service to the sum of its steps.
	Services map[string]Span
	// CriticalPath is the chain of dependent services whose worst-case
	// estimates sum highest. Its services run one after the other whatever
	// the parallelism, so no run is shorter than the time they take; with
	// unbounded parallelism and every step at its estimate, the run takes
	// exactly that. Critical is the sum along it (its Typical is this
	// chain's, which need not be the chain with the highest typical sum).
	CriticalPath []string
	Critical     Span
	// Sequential is the sum over all services: a --parallel 1 run.
	Sequential Span
}

// Estimate sums the steps' estimates per service, then finds the critical
// path through the selected services.
func (p *Plan) Estimate() Estimate {
	e := Estimate{Services: make(map[string]Span, len(p.Services))}
	g := dag.New(len(p.Services))
	for _, svc := range p.Services {
		var d Span
		for _, step := range svc.Steps {
			d = d.Add(step.Estimate)
		}
		// A canary's observation holds back the rest of its service: it
		// counts as part of each canary instance. A person's promotion
		// may take up to its timeout.
		if c := p.CanaryOf(svc.Name); c != nil {
			d = d.Add(Span{Typical: c.Observe, Worst: c.Observe})
			if !c.AutoPromote {
				d.Worst += c.PromoteTimeout
			}
		}
		e.Services[svc.Name] = d
		e.Sequential = e.Sequential.Add(d)
		g.Add(svc.Name)
	}
	for _, svc := range p.Services {
		// A serial batch waits for the one before it as for a need.
		for _, n := range append(slices.Clone(svc.Needs), svc.After...) {
			if g.Has(n) {
				g.Connect(n, svc.Name)
			}
		}
	}
	path, _, err := g.CriticalPath(func(v string) time.Duration { return e.Services[v].Worst })
	if err == nil {
		e.CriticalPath = path
		for _, name := range path {
			e.Critical = e.Critical.Add(e.Services[name])
		}
	}
	return e
}

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// benchDAG is one simulated platform: its services in declaration order
// (the order of the generated plan, the shell loop and the inventory).
type benchDAG struct {
	Name  string // "24", "90", "platform"
	Title string // what it is, for the report
	Svcs  []*benchService
}

// svcDef is a service of a DAG before it has a unit and a port.
type svcDef struct {
	Name  string
	Needs []string
}

// readyDelay spreads the services' start-up times over 200–300 ms by a
// fixed rule, so every run simulates the same platform.
func readyDelay(i int) time.Duration {
	return 200*time.Millisecond + time.Duration((i*7)%11)*10*time.Millisecond
}

// chainsDAG is n independent chains of length services each: chain k is
// c<k>-1 → c<k>-2 → …, declared chain after chain.
func chainsDAG(n, length int) []svcDef {
	var out []svcDef
	for k := 1; k <= n; k++ {
		for l := 1; l <= length; l++ {
			d := svcDef{Name: fmt.Sprintf("c%d-%d", k, l)}
			if l > 1 {
				d.Needs = []string{fmt.Sprintf("c%d-%d", k, l-1)}
			}
			out = append(out, d)
		}
	}
	return out
}

// levelsDAG is a layered platform: sizes[0] services with no dependency,
// then each later level's services on the level before. A level-2
// service needs two level-1 services (j and j+1); a service of a deeper
// level needs one of the level before, spread by a fixed multiplicative
// rule so that the services that lead to the deepest chains are not
// simply the first declared. Services are declared level after level.
func levelsDAG(sizes []int) []svcDef {
	name := func(level, i int) string { return fmt.Sprintf("l%d-%02d", level+1, i+1) }
	var out []svcDef
	for level, n := range sizes {
		for i := range n {
			d := svcDef{Name: name(level, i)}
			switch prev := 0; {
			case level == 0:
			case level == 1:
				prev = sizes[0]
				d.Needs = []string{name(0, i%prev), name(0, (i+1)%prev)}
			default:
				prev = sizes[level-1]
				d.Needs = []string{name(level-1, (i*7+3)%prev)}
			}
			out = append(out, d)
		}
	}
	return out
}

// planDAG copies the services and dependency edges of a plan file.
func planDAG(path string) ([]svcDef, error) {
	cfg, diags := dsl.Load(path, dsl.LoadOptions{})
	if diags.HasErrors() {
		return nil, fmt.Errorf("loading %s: %s", path, diags.Error())
	}
	ref, diags := planner.Compile(cfg, planner.Options{StepTypes: steps.Types()})
	if diags.HasErrors() {
		return nil, fmt.Errorf("compiling %s: %s", path, diags.Error())
	}
	var out []svcDef
	for _, s := range ref.Services {
		out = append(out, svcDef{Name: s.Name, Needs: s.Needs})
	}
	return out, nil
}

// dagFor resolves one -dags entry.
func dagFor(name, planPath string) (string, []svcDef, error) {
	switch name {
	case "24":
		return "24 services, 8 independent chains of 3", chainsDAG(8, 3), nil
	case "90":
		return "90 services, 4 levels of 30, 30, 20, 10 (each level-2 service on two level-1 services)", levelsDAG([]int{30, 30, 20, 10}), nil
	case "platform":
		defs, err := planDAG(planPath)
		return fmt.Sprintf("%d services with the dependency edges of %s", len(defs), planPath), defs, err
	}
	return "", nil, fmt.Errorf("unknown -dags entry %q: want 24, 90 or platform", name)
}

// levels groups a DAG's services by dependency depth (1 = no
// dependency), each level in declaration order: what a level-by-level
// script restarts in one call.
func levels(svcs []*benchService) [][]*benchService {
	depth := map[string]int{}
	// Declaration order need not be topological: repeat until no depth
	// changes (at most the DAG's depth passes).
	for changed := true; changed; {
		changed = false
		for _, s := range svcs {
			d := 1
			for _, n := range s.Needs {
				d = max(d, depth[n]+1)
			}
			if depth[s.Name] != d {
				depth[s.Name], changed = d, true
			}
		}
	}
	var out [][]*benchService
	for _, s := range svcs {
		d := depth[s.Name] - 1
		for len(out) <= d {
			out = append(out, nil)
		}
		out[d] = append(out[d], s)
	}
	return out
}

// unitName is the systemd unit of a service of DAG dag.
func unitName(dag, svc string) string {
	return "b" + dag + "-" + strings.ReplaceAll(svc, ".", "-") + ".service"
}

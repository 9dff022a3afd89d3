package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// engineDepth is the simulated platform's dependency depth, as the
// reference platform's.
const engineDepth = 6

// engineBench measures what the engine itself costs per service: a plan
// compiled from HCL with the real step types, run by the executor with the
// real step builder over a fake systemd whose restarts are instant, every
// event marshalled to JSON as the events log does. Time and allocations
// per service, for 1,000 and 10,000 services, one at a time and unbounded.
func engineBench() error {
	fmt.Printf("Engine overhead (restart + systemd health check per service, fake systemd, events marshalled), %d layers:\n", engineDepth)
	fmt.Printf("%-28s %14s %14s %14s\n", "services/parallel", "µs/service", "allocs/svc", "bytes/svc")
	for _, n := range []int{1000, 10000} {
		plan, err := enginePlan(n)
		if err != nil {
			return err
		}
		for _, parallel := range []int{1, 0} {
			var runErr error
			r := testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					fake := systemdfake.New()
					for _, s := range plan.Services {
						fake.AddUnit(s.Unit, false)
					}
					b.StartTimer()
					res, err := executor.Run(context.Background(), plan, executor.Options{
						Build:    steps.NewBuilder(steps.Deps{Systemd: fake}),
						Parallel: parallel,
						RunID:    "bench",
						Events:   marshalSink{},
					})
					if err == nil && len(res.Succeeded) != n {
						err = fmt.Errorf("%d of %d succeeded", len(res.Succeeded), n)
					}
					if err != nil {
						runErr = err
						b.SkipNow()
					}
				}
			})
			if runErr != nil {
				return runErr
			}
			perSvc := float64(r.NsPerOp()) / float64(n) / 1000
			fmt.Printf("%-28s %14.1f %14d %14d\n", fmt.Sprintf("%d/parallel=%d", n, parallel), perSvc,
				r.AllocsPerOp()/int64(n), r.AllocedBytesPerOp()/int64(n))
		}
	}
	fmt.Println("(target: ≤ 100 µs per service)")
	return nil
}

// enginePlan compiles n services in engineDepth layers, each service
// needing two of the layer before it.
func enginePlan(n int) (*planner.Plan, error) {
	var b strings.Builder
	b.WriteString(`pipeline "svc" {
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
`)
	width := (n + engineDepth - 1) / engineDepth
	for i := range n {
		var needs []string
		if i >= width {
			needs = append(needs, fmt.Sprintf("%q", fmt.Sprintf("s%d", i-width)))
			if j := i - width + 1; j%width != 0 {
				needs = append(needs, fmt.Sprintf("%q", fmt.Sprintf("s%d", j)))
			}
		}
		fmt.Fprintf(&b, "service \"s%d\" {\n  unit = \"s%d.service\"\n  type = \"svc\"\n  depends_on = [%s]\n  health \"systemd\" {}\n}\n",
			i, i, strings.Join(needs, ", "))
	}
	b.WriteString("plan \"engine\" {}\n")
	src := []byte(b.String())
	cfg, diags := dsl.Load("engine.hcl", dsl.LoadOptions{
		ReadFile: func(string) ([]byte, error) { return src, nil },
		Glob:     func(string) ([]string, error) { return nil, nil },
	})
	if diags.HasErrors() {
		return nil, fmt.Errorf("engine plan: %s", diags.Error())
	}
	plan, diags := planner.Compile(cfg, planner.Options{StepTypes: steps.Types(), Parallel: 0})
	if diags.HasErrors() {
		return nil, fmt.Errorf("engine plan: %s", diags.Error())
	}
	return plan, nil
}

// marshalSink costs what the JSONL events log costs, short of the write.
type marshalSink struct{}

func (marshalSink) Write(e executor.Event) error {
	_, err := json.Marshal(e)
	return err
}

func (marshalSink) Close() error { return nil }

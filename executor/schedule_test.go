package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// startAll drains next() and returns the names started, in order.
func startAll(s *schedule) []string {
	var out []string
	for {
		i, ok := s.next()
		if !ok {
			return out
		}
		out = append(out, s.services[i].Name)
	}
}

func TestScheduleBatchMaxUnavailable(t *testing.T) {
	plan := makePlan(
		svcSpec{def: "pg", typ: "infra"},
		svcSpec{def: "redis", typ: "infra"},
		svcSpec{def: "minio", typ: "infra", tags: []string{"storage"}},
		svcSpec{def: "api", typ: "api"},
		svcSpec{def: "worker", typ: "worker", tags: []string{"storage"}},
	)
	tests := []struct {
		name    string
		batches []planner.Batch
		// rounds: what starts first, then after each finish of the
		// earliest in-flight service.
		wantFirst []string
	}{
		{"no batches", nil, []string{"pg", "redis", "minio", "api", "worker"}},
		{"infra one at a time", []planner.Batch{{Types: []string{"infra"}, MaxUnavailable: 1}}, []string{"pg", "api", "worker"}},
		{"infra two at a time", []planner.Batch{{Types: []string{"infra"}, MaxUnavailable: 2}}, []string{"pg", "redis", "api", "worker"}},
		{"two batches", []planner.Batch{{Types: []string{"infra"}, MaxUnavailable: 1}, {Tags: []string{"storage"}, MaxUnavailable: 1}}, []string{"pg", "api", "worker"}},
		{"zero means no limit", []planner.Batch{{Types: []string{"infra"}, MaxUnavailable: 0}}, []string{"pg", "redis", "minio", "api", "worker"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan.Batches = tt.batches
			s := newSchedule(plan, 0, nil)
			if got := startAll(s); !slices.Equal(got, tt.wantFirst) {
				t.Errorf("first round started %v, want %v", got, tt.wantFirst)
			}
			// Finish services one by one; at no time may a batch exceed
			// its limit, and every service starts eventually.
			started := len(tt.wantFirst)
			for started < len(plan.Services) || s.inFlight > 0 {
				i := slices.Index(s.outcome, outcomeRunning)
				if i < 0 {
					t.Fatalf("nothing in flight and %d not started", len(plan.Services)-started)
				}
				s.finish(i, outcomeSucceeded)
				started += len(startAll(s))
				for b, n := range s.batchInFlight {
					if n > s.batchMax[b] {
						t.Fatalf("batch %d has %d in flight, max %d", b, n, s.batchMax[b])
					}
				}
			}
		})
	}
}

func TestScheduleParallelAndPlanOrder(t *testing.T) {
	plan := makePlan(specs("a", "b", "c: a", "d", "e: c")...)
	s := newSchedule(plan, 2, nil)
	if got := startAll(s); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("started %v, want [a b]", got)
	}
	s.finish(0, outcomeSucceeded) // a: c becomes ready and comes before d
	if got := startAll(s); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after a, started %v, want [c]", got)
	}
	s.finish(2, outcomeRolledBack) // c failed: e never becomes ready
	if got := s.skipDependents(2); len(got) != 1 || plan.Services[got[0]].Name != "e" {
		t.Fatalf("skipDependents(c) = %v, want [e]", got)
	}
	if got := startAll(s); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("after c, started %v, want [d]", got)
	}
	if s.pending != 0 {
		t.Errorf("pending = %d, want 0", s.pending)
	}
}

// TestScheduleLongestRemainingPathFirst: of the services ready together,
// the one heading the longest remaining chain starts first (weighed by
// the steps' fixed waits, then by the number of services), plan order
// breaking ties; so with fewer slots than ready services the critical
// path never waits behind services off it.
func TestScheduleLongestRemainingPathFirst(t *testing.T) {
	withWait := func(p *planner.Plan, name string, d time.Duration) {
		for _, svc := range p.Services {
			if svc.Name == name {
				svc.Steps = append(svc.Steps, &planner.Step{Name: "settle", Type: "stabilize", Estimate: planner.Span{Typical: d}})
			}
		}
	}
	tests := []struct {
		name     string
		specs    []string
		waits    map[string]time.Duration
		parallel int
		want     []string // the order in which services start, finishing the first in flight each time
	}{
		{"deepest chain first", []string{"x", "y", "a", "b: a", "c: b", "d: y"}, nil, 0,
			[]string{"a", "y", "x", "b", "d", "c"}},
		{"deepest chain first, one slot", []string{"x", "y", "a", "b: a", "c: b", "d: y"}, nil, 1,
			// After a: b and y both head two services; y comes first in the plan.
			[]string{"a", "y", "b", "x", "c", "d"}},
		{"ties in plan order", []string{"p", "q", "r", "p2: p", "q2: q", "r2: r"}, nil, 0,
			[]string{"p", "q", "r", "p2", "q2", "r2"}},
		{"a fixed wait outweighs a longer chain", []string{"a", "b: a", "c: b", "slow", "after: slow"},
			map[string]time.Duration{"after": 30 * time.Second}, 1,
			[]string{"slow", "after", "a", "b", "c"}},
		{"a dependent's path counts through each of its needs", []string{"x", "m", "n", "j: m n", "k: j"}, nil, 1,
			[]string{"m", "n", "j", "x", "k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := makePlan(specs(tt.specs...)...)
			for name, d := range tt.waits {
				withWait(plan, name, d)
			}
			s := newSchedule(plan, tt.parallel, nil)
			var got []string
			var inFlight []int
			for {
				for {
					i, ok := s.next()
					if !ok {
						break
					}
					got = append(got, s.services[i].Name)
					inFlight = append(inFlight, i)
				}
				if len(inFlight) == 0 {
					break
				}
				s.finish(inFlight[0], outcomeSucceeded)
				inFlight = inFlight[1:]
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("started %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMinHeapOrders(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h minHeap
	in := r.Perm(500)
	for _, v := range in {
		h.push(v)
	}
	for want := range 500 {
		if got := h.pop(); got != want {
			t.Fatalf("pop = %d, want %d", got, want)
		}
	}
	if h.len() != 0 {
		t.Errorf("heap not empty")
	}
}

// benchPlan builds a plan of n services: a chain (each needs the previous)
// or a wide DAG (ten roots, each later service needs two earlier ones).
func benchPlan(n int, shape string) *planner.Plan {
	p := &planner.Plan{Name: "bench"}
	step := []*planner.Step{{Name: "restart", Type: "restart"}}
	for i := range n {
		svc := &planner.Service{Name: fmt.Sprintf("svc%05d", i), Unit: fmt.Sprintf("svc%05d.service", i), Steps: step}
		switch {
		case shape == "chain" && i > 0:
			svc.Needs = []string{p.Services[i-1].Name}
		case shape == "wide" && i >= 10:
			svc.Needs = []string{p.Services[i/2].Name, p.Services[i-10].Name}
		}
		p.Services = append(p.Services, svc)
		p.Order = append(p.Order, svc.Name)
	}
	return p
}

type instantStep struct{}

func (instantStep) Do(context.Context, *Env) (Undo, error) { return nil, nil }

// BenchmarkRun measures the executor's own overhead per service: steps are
// instant, events are marshalled as the file sink does, then dropped.
func BenchmarkRun(b *testing.B) {
	build := func(*planner.Service, *planner.Step) (Step, error) { return instantStep{}, nil }
	for _, n := range []int{1000, 10000} {
		for _, shape := range []string{"chain", "wide"} {
			for _, parallel := range []int{1, 0} {
				plan := benchPlan(n, shape)
				b.Run(fmt.Sprintf("%d/%s/parallel=%d", n, shape, parallel), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						res, err := Run(b.Context(), plan, Options{Build: build, Parallel: parallel, RunID: "bench", Events: discardSink{}})
						if err != nil || len(res.Succeeded) != n {
							b.Fatalf("err %v, %d succeeded", err, len(res.Succeeded))
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/service")
				})
			}
		}
	}
}

type discardSink struct{}

func (discardSink) Write(ev Event) error {
	_, err := json.Marshal(ev)
	return err
}
func (discardSink) Close() error { return nil }

// TestScheduleSerialBatches: an instance in a later batch waits for the
// batch before it to finish, and starts even when an instance of that
// batch failed (the run's on_failure and max_failures decide whether the
// run goes on) or was skipped; an instance that needs a failed one is
// skipped. max_unavailable per service limits its instances in flight.
func TestScheduleSerialBatches(t *testing.T) {
	plan := &planner.Plan{Services: []*planner.Service{
		{Name: "db@h1", Service: "db"},
		{Name: "api@h1", Service: "api", Needs: []string{"db@h1"}},
		{Name: "api@h2", Service: "api", After: []string{"api@h1"}},
		{Name: "api@h3", Service: "api", After: []string{"api@h2"}},
		{Name: "api@h4", Service: "api", After: []string{"api@h2"}},
		{Name: "web@h1", Service: "web", Needs: []string{"api@h1", "api@h2", "api@h3", "api@h4"}},
	}, Batches: []planner.Batch{{Services: []string{"api"}, MaxUnavailable: 1}}}
	s := newSchedule(plan, 0, nil)
	if got := startAll(s); !slices.Equal(got, []string{"db@h1"}) {
		t.Fatalf("first round %v", got)
	}
	// db fails: api@h1 (needs db) is skipped, which counts as finished for
	// the batch after it.
	s.finish(0, outcomeRolledBack)
	skipped := s.skipDependents(0)
	if want := []int{1, 5}; !slices.Equal(skipped, want) {
		t.Fatalf("skipped %v, want %v", skipped, want)
	}
	if got := startAll(s); !slices.Equal(got, []string{"api@h2"}) {
		t.Fatalf("after the skip: %v", got)
	}
	// api@h2 fails: the next batch still starts, one at a time.
	s.finish(2, outcomeRolledBack)
	if got := startAll(s); !slices.Equal(got, []string{"api@h3"}) {
		t.Fatalf("after the failed batch: %v", got)
	}
	s.finish(3, outcomeSucceeded)
	if got := startAll(s); !slices.Equal(got, []string{"api@h4"}) {
		t.Fatalf("then: %v", got)
	}
	s.finish(4, outcomeSucceeded)
	if s.pending != 0 || s.inFlight != 0 {
		t.Fatalf("pending %d in flight %d", s.pending, s.inFlight)
	}
}

// TestScheduleSpreadsOverHosts: with --parallel 3 over three hosts, the
// instances of equal weight start one per host, and when one host's
// instance finishes first its next instance starts there, not a second
// one on a host that is still busy.
func TestScheduleSpreadsOverHosts(t *testing.T) {
	hosts := []*planner.Host{{Name: "h1"}, {Name: "h2"}, {Name: "h3"}}
	var defs []string
	for i := range 4 {
		defs = append(defs, fmt.Sprintf("s%d", i))
	}
	base := makePlan(specs(defs...)...)
	plan := &planner.Plan{Name: "fleet"}
	for _, svc := range base.Services {
		for _, h := range hosts {
			inst := *svc
			inst.Name = svc.Name + "@" + h.Name
			inst.Host = h
			plan.Services = append(plan.Services, &inst)
			plan.Order = append(plan.Order, inst.Name)
		}
	}
	s := newSchedule(plan, 3, nil)
	if got := startAll(s); !slices.Equal(got, []string{"s0@h1", "s0@h2", "s0@h3"}) {
		t.Fatalf("first started %v, want one per host", got)
	}
	// h2 finishes first, twice in a row: its next instances go to h2.
	// In plan order alone the next would be s1@h1, a second on busy h1.
	name := func(i int) string { return s.services[i].Name }
	finish := func(n string) {
		i := slices.IndexFunc(plan.Services, func(svc *planner.Service) bool { return svc.Name == n })
		s.finish(i, outcomeSucceeded)
	}
	finish("s0@h2")
	i, ok := s.next()
	if !ok || name(i) != "s1@h2" {
		t.Fatalf("after s0@h2 finished, started %v (%v), want s1@h2", name(i), ok)
	}
	finish("s1@h2")
	if i, _ := s.next(); name(i) != "s2@h2" {
		t.Fatalf("after s1@h2 finished, started %v, want s2@h2", name(i))
	}
	for h, n := range s.hostInFlight {
		if n != 1 {
			t.Errorf("host %d has %d in flight, want 1", h, n)
		}
	}
	// A heavier service (a longer remaining path) still goes first,
	// whatever its host's load: balance only breaks ties.
	plan2 := makePlan(specs("a", "b", "c: a")...)
	plan2.Services[0].Host, plan2.Services[1].Host = hosts[0], hosts[1]
	s2 := newSchedule(plan2, 1, nil)
	s2.hostInFlight[0] = 5 // h1 busy (as if with other work)
	if i, _ := s2.next(); s2.services[i].Name != "a" {
		t.Errorf("started %s first, want a (it heads the longer path)", s2.services[i].Name)
	}
}

package main

// Parallel `rollout run` against a real systemd --user manager (issue 4):
// the scheduler's promises are checked from the events log, which records
// what really happened in the order it happened.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
)

// gatedPipeline restarts a service and waits for it to answer. The gate
// fails at once, before anything changed, when the service's working dir
// holds FAIL: a failure whose timing the test controls.
const gatedPipeline = `
pipeline "svc" {
  step "exec" "gate" {
    command = ["test", "!", "-e", "${service.working_dir}/FAIL"]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
`

// parSpec is one service of a parallel test platform.
type parSpec struct {
	name  string
	needs []string
	tags  []string
	fail  bool // the gate fails
}

// readyDelay keeps every restart in flight long enough that services
// started together are still running when their neighbours finish.
const readyDelay = "-ready-delay=700ms"

// parallelRun starts a platform of specs, writes a plan with planAttrs,
// runs it with args and returns the events of the run.
func parallelRun(t *testing.T, specs []parSpec, planAttrs string, args ...string) (runResult, []executor.Event) {
	t.Helper()
	p := newPlatform(t)
	var hcl strings.Builder
	hcl.WriteString(gatedPipeline)
	for _, sp := range specs {
		s := p.addService(sp.name, "v1", systemdtest.UnitOptions{Args: []string{readyDelay}})
		extra := `type = "svc"`
		if len(sp.needs) > 0 {
			extra += fmt.Sprintf("\ndepends_on = [%s]", quoteList(sp.needs))
		}
		if len(sp.tags) > 0 {
			extra += fmt.Sprintf("\ntags = [%s]", quoteList(sp.tags))
		}
		hcl.WriteString(s.serviceHCL(extra))
		if sp.fail {
			writeFile(t, s.Dir+"/FAIL", "")
		}
	}
	p.startAll()
	fmt.Fprintf(&hcl, "plan \"par\" {\n%s\n}\n", planAttrs)
	plan := p.writePlan("plan.hcl", hcl.String())
	r := p.rollout(append([]string{"run", plan, "--user", "--no-tty", "--events", p.events}, args...)...)
	return r, p.readEvents()
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// at returns the position of the first event named ev for service, or -1.
func at(evs []executor.Event, ev, service string) int {
	return slices.IndexFunc(evs, func(e executor.Event) bool { return e.Event == ev && e.Service == service })
}

// finishedAt is where service's restart ended (success or failure), or -1.
func finishedAt(evs []executor.Event, service string) int {
	if i := at(evs, executor.ServiceRestartSuccess, service); i >= 0 {
		return i
	}
	return at(evs, executor.ServiceRestartFailed, service)
}

// outcomes maps each service to its last service-level event.
func outcomes(evs []executor.Event) map[string]string {
	out := map[string]string{}
	for _, e := range evs {
		switch e.Event {
		case executor.ServiceRestartSuccess, executor.ServiceRestartFailed, executor.ServiceSkipped:
			out[e.Service] = e.Event
		}
	}
	return out
}

// checkNeedsFirst fails t when a service started before every one of its
// dependencies had succeeded.
func checkNeedsFirst(t *testing.T, evs []executor.Event, specs []parSpec) {
	t.Helper()
	for _, sp := range specs {
		start := at(evs, executor.ServiceRestartStart, sp.name)
		if start < 0 {
			continue
		}
		for _, need := range sp.needs {
			ok := at(evs, executor.ServiceRestartSuccess, need)
			if ok < 0 || ok > start {
				t.Errorf("%s started (event %d) before its dependency %s succeeded (event %d)", sp.name, start, need, ok)
			}
		}
	}
}

// maxInFlight is the largest number of the given services in flight at
// once, replaying the events in order.
func maxInFlight(evs []executor.Event, keep func(string) bool) int {
	cur, peak := 0, 0
	for _, e := range evs {
		if e.Service == "" || !keep(e.Service) {
			continue
		}
		switch e.Event {
		case executor.ServiceRestartStart:
			cur++
			peak = max(peak, cur)
		case executor.ServiceRestartSuccess, executor.ServiceRestartFailed:
			cur--
		}
	}
	return peak
}

func TestParallelRunOverlapsAWaveAndKeepsDependencyOrder(t *testing.T) {
	t.Parallel()
	specs := []parSpec{
		{name: "w1.a"}, {name: "w1.b"}, {name: "w1.c"}, {name: "w1.d"}, {name: "w1.e"},
		{name: "w2.x", needs: []string{"w1.a", "w1.b"}},
		{name: "w2.y", needs: []string{"w1.e"}},
		{name: "w3.z", needs: []string{"w2.x", "w1.c"}},
	}
	r, evs := parallelRun(t, specs, "", "--parallel", "4")
	if r.Code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, sp := range specs {
		if got := outcomes(evs)[sp.name]; got != executor.ServiceRestartSuccess {
			t.Errorf("%s: %s, want %s", sp.name, got, executor.ServiceRestartSuccess)
		}
	}
	// Overlap: one wave-1 service started before another one finished.
	overlap := false
	for _, a := range []string{"w1.a", "w1.b", "w1.c", "w1.d"} {
		for _, b := range []string{"w1.a", "w1.b", "w1.c", "w1.d"} {
			if a != b && at(evs, executor.ServiceRestartStart, b) < at(evs, executor.ServiceRestartSuccess, a) &&
				at(evs, executor.ServiceRestartStart, b) > at(evs, executor.ServiceRestartStart, a) {
				overlap = true
			}
		}
	}
	if !overlap {
		t.Errorf("no two wave-1 services were in flight together:\n%q", eventNames(evs, serviceLevel))
	}
	all := func(string) bool { return true }
	if got := maxInFlight(evs, all); got != 4 {
		t.Errorf("at most %d services in flight, want 4 (--parallel 4):\n%q", got, eventNames(evs, serviceLevel))
	}
	checkNeedsFirst(t, evs, specs)
}

func TestParallelAbortLetsInFlightFinishAndStartsNothingNew(t *testing.T) {
	t.Parallel()
	// Plan order starts the first four together; w1.bad fails at its gate
	// while the other three are still waiting for their services.
	specs := []parSpec{
		{name: "w1.a"}, {name: "w1.bad", fail: true}, {name: "w1.b"}, {name: "w1.c"},
		{name: "w1.late"},
		{name: "w2.x", needs: []string{"w1.a"}},
	}
	r, evs := parallelRun(t, specs, `on_failure = "abort"`, "--parallel", "4")
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	failed := at(evs, executor.ServiceRestartFailed, "w1.bad")
	if failed < 0 {
		t.Fatalf("no SERVICE_RESTART_FAILED for w1.bad:\n%q", eventNames(evs, serviceLevel))
	}
	inFlight := 0
	for i, e := range evs {
		if e.Event != executor.ServiceRestartStart {
			continue
		}
		if i > failed {
			t.Errorf("%s started after w1.bad failed (abort starts nothing new)", e.Service)
			continue
		}
		if e.Service == "w1.bad" {
			continue
		}
		// In flight when the failure came: it must finish, and succeed.
		if end := finishedAt(evs, e.Service); end > failed {
			inFlight++
		}
		if got := outcomes(evs)[e.Service]; got != executor.ServiceRestartSuccess {
			t.Errorf("%s was in flight at the failure and ended %s, want %s", e.Service, got, executor.ServiceRestartSuccess)
		}
	}
	if inFlight == 0 {
		t.Errorf("no service was in flight when w1.bad failed; the test proves nothing:\n%q", eventNames(evs, serviceLevel))
	}
	for _, name := range []string{"w1.late", "w2.x"} {
		i := at(evs, executor.ServiceSkipped, name)
		if i < 0 {
			t.Errorf("%s: no SERVICE_SKIPPED event:\n%q", name, eventNames(evs, serviceLevel))
		}
	}
}

func TestParallelContinueSkipsExactlyTheDependents(t *testing.T) {
	t.Parallel()
	specs := []parSpec{
		{name: "bad", fail: true},
		{name: "ok1"},
		{name: "ok2"},
		{name: "dep1", needs: []string{"bad"}},
		{name: "dep2", needs: []string{"dep1"}},       // transitive
		{name: "both", needs: []string{"ok1", "bad"}}, // one good, one failed dependency
		{name: "ok3", needs: []string{"ok1", "ok2"}},  // depends only on successes
		{name: "ok4", needs: []string{"ok3"}},
	}
	r, evs := parallelRun(t, specs, `on_failure = "continue"`, "--parallel", "0")
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	want := map[string]string{
		"bad":  executor.ServiceRestartFailed,
		"ok1":  executor.ServiceRestartSuccess,
		"ok2":  executor.ServiceRestartSuccess,
		"ok3":  executor.ServiceRestartSuccess,
		"ok4":  executor.ServiceRestartSuccess,
		"dep1": executor.ServiceSkipped,
		"dep2": executor.ServiceSkipped,
		"both": executor.ServiceSkipped,
	}
	got := outcomes(evs)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
	for _, name := range []string{"dep1", "dep2", "both"} {
		if at(evs, executor.ServiceRestartStart, name) >= 0 {
			t.Errorf("%s started although it depends on the failed service", name)
		}
		if e := evs[max(at(evs, executor.ServiceSkipped, name), 0)]; e.Cause != "bad" {
			t.Errorf("%s skipped with cause %q, want the failed dependency %q", name, e.Cause, "bad")
		}
	}
	checkNeedsFirst(t, evs, specs)
}

func TestParallelMaxFailuresStopsAContinueRun(t *testing.T) {
	t.Parallel()
	// One at a time so the order is fixed: bad1 fails, ok runs, bad2 fails
	// and reaches max_failures, so rest never starts.
	specs := []parSpec{
		{name: "bad1", fail: true}, {name: "ok"}, {name: "bad2", fail: true}, {name: "rest"},
	}
	r, evs := parallelRun(t, specs, "on_failure = \"continue\"\nmax_failures = 2", "--parallel", "1")
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	want := map[string]string{
		"bad1": executor.ServiceRestartFailed,
		"ok":   executor.ServiceRestartSuccess,
		"bad2": executor.ServiceRestartFailed,
		"rest": executor.ServiceSkipped,
	}
	if got := outcomes(evs); !maps.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	if i := at(evs, executor.ServiceSkipped, "rest"); i >= 0 && !strings.Contains(evs[i].Message, "max_failures") {
		t.Errorf("rest skipped with %q, want the max_failures cause", evs[i].Message)
	}
}

func TestParallelBatchKeepsOneTaggedServiceInFlight(t *testing.T) {
	t.Parallel()
	gpu := []string{"gpu"}
	specs := []parSpec{
		{name: "m1", tags: gpu}, {name: "m2", tags: gpu}, {name: "plain1"},
		{name: "m3", tags: gpu}, {name: "plain2"}, {name: "m4", tags: gpu},
	}
	r, evs := parallelRun(t, specs, "batch {\n  tags = [\"gpu\"]\n  max_unavailable = 1\n}", "--parallel", "0")
	if r.Code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	isGPU := func(s string) bool { return strings.HasPrefix(s, "m") }
	if got := maxInFlight(evs, isGPU); got != 1 {
		t.Errorf("%d gpu services in flight at once, want 1:\n%q", got, eventNames(evs, serviceLevel))
	}
	// The batch limits only its members: the run as a whole was parallel.
	if got := maxInFlight(evs, func(string) bool { return true }); got < 2 {
		t.Errorf("at most %d services in flight; the untagged ones should overlap the batch", got)
	}
	for _, sp := range specs {
		if got := outcomes(evs)[sp.name]; got != executor.ServiceRestartSuccess {
			t.Errorf("%s: %s", sp.name, got)
		}
	}
}

func serviceLevel(e executor.Event) bool {
	switch e.Event {
	case executor.StepStart, executor.StepSuccess, executor.StepFailed:
		return false
	}
	return true
}

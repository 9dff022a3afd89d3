// Command bench measures how close a full-platform restart gets to its
// lower bound (see .dev/performance.md). It takes a few minutes, so it is a
// program, not part of `go test ./...`:
//
//	go run ./bench
//
// On a real private `systemd --user` manager (internal/systemdtest) it
// simulates the reference platform: one small HTTP service (testsvc) per
// service of plans/platform.hcl, with the same dependency edges, each
// becoming ready a set, varied few hundred milliseconds after it starts.
// In one run it measures:
//
//   - each service's own restart-to-ready time, one at a time, and from
//     them the critical-path bound: the longest chain of dependent
//     services, each counted with its restart-to-ready time plus the
//     plan's fixed wait (the stabilize window);
//   - an operator's shell loop: systemctl --user restart, curl polling,
//     the same settle sleep, in dependency order;
//   - `rollout run` at --parallel 1 and --parallel 0 (unbounded);
//   - health detection latency: from a service's ready time (its
//     /ready-at) to its verify step's STEP_SUCCESS;
//   - engine overhead: the executor with the real step builder over a
//     fake systemd that restarts instantly, for 1,000 and 10,000 services.
//
// It also runs the zero-downtime scenarios (docs/zero-downtime.md): a
// 3-instance service behind a real HAProxy and nginx under load, restarted
// in place, rolling, with drain, and with a broken release, counting the
// requests that failed or were slow and timing each run.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/planner/dag"
	"github.com/rollout-sh/rollout/steps"
)

// settle is the bench pipeline's stabilize window, and the shell loop's
// sleep after each service: a fixed wait the bound must include.
const settle = 100 * time.Millisecond

func main() {
	planPath := flag.String("plan", "plans/platform.hcl", "the plan whose services and dependencies the simulated platform copies")
	skipPlatform := flag.Bool("skip-platform", false, "skip the systemd measurements (engine overhead only)")
	skipEngine := flag.Bool("skip-engine", false, "skip the engine-overhead benchmark")
	skipZD := flag.Bool("skip-zero-downtime", false, "skip the zero-downtime scenarios (HAProxy, nginx)")
	flag.Parse()
	if !*skipPlatform {
		if err := platformBench(*planPath); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
	}
	if !*skipZD {
		if err := zeroDowntimeBench(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
	}
	if !*skipEngine {
		if err := engineBench(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
	}
}

// benchService is one simulated service.
type benchService struct {
	Name  string
	Unit  string
	Port  int
	Dir   string
	Delay time.Duration // -ready-delay
	Needs []string
}

func (s *benchService) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, path)
}

func platformBench(planPath string) error {
	cfg, diags := dsl.Load(planPath, dsl.LoadOptions{})
	if diags.HasErrors() {
		return fmt.Errorf("loading %s: %s", planPath, diags.Error())
	}
	ref, diags := planner.Compile(cfg, planner.Options{StepTypes: steps.Types()})
	if diags.HasErrors() {
		return fmt.Errorf("compiling %s: %s", planPath, diags.Error())
	}

	m, stop, err := systemdtest.StartMain()
	if err != nil {
		return fmt.Errorf("starting a systemd --user manager: %w", err)
	}
	defer stop()
	work, err := os.MkdirTemp("", "rollout-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	testsvc, err := goBuild(work, "testsvc", "github.com/rollout-sh/rollout/internal/testsvc")
	if err != nil {
		return err
	}
	rollout, err := goBuild(work, "rollout", "github.com/rollout-sh/rollout/cmd/rollout")
	if err != nil {
		return err
	}

	svcs, err := writeUnits(m, ref, testsvc, work)
	if err != nil {
		return err
	}
	ctx := context.Background()
	conn, err := m.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	if err := startAll(ctx, m, svcs); err != nil {
		return err
	}
	depth := len(ref.Waves)
	fmt.Printf("Simulated platform: %d services from %s, %d waves (dependency depth), ready delays %s–%s, settle %s, %d CPUs\n\n",
		len(svcs), planPath, depth, minDelay(svcs), maxDelay(svcs), settle, runtime.NumCPU())

	// 1. Each service alone: restart job, then until its new process listens.
	own := map[string]time.Duration{}
	for _, s := range svcs {
		d, err := restartToReady(ctx, m, s)
		if err != nil {
			return err
		}
		own[s.Name] = d
	}
	g := dag.New(len(svcs))
	for _, s := range svcs {
		g.Add(s.Name)
	}
	for _, s := range svcs {
		for _, n := range s.Needs {
			g.Connect(n, s.Name)
		}
	}
	path, bound, err := g.CriticalPath(func(v string) time.Duration { return own[v] + settle })
	if err != nil {
		return err
	}
	var sum time.Duration
	for _, d := range own {
		sum += d + settle
	}

	// 2. The operator's shell loop.
	script := shellLoop(svcs)
	writeFile(filepath.Join(work, "restart-all.sh"), script)
	shellWall, err := timed(func() error { return runEnv(m, "bash", filepath.Join(work, "restart-all.sh")) })
	if err != nil {
		return fmt.Errorf("shell loop: %w", err)
	}

	// 3. rollout run, one at a time and unbounded.
	planFile := filepath.Join(work, "bench.hcl")
	writeFile(planFile, benchPlan(svcs))
	type runFigures struct {
		wall      time.Duration
		detection []time.Duration
	}
	runs := map[int]*runFigures{}
	for _, parallel := range []int{1, 0} {
		events := filepath.Join(work, fmt.Sprintf("events-%d.jsonl", parallel))
		wall, err := timed(func() error {
			return runEnv(m, rollout, "run", planFile, "--user", "--no-tty", "--events", events, "--parallel", strconv.Itoa(parallel))
		})
		if err != nil {
			return fmt.Errorf("rollout run --parallel %d: %w", parallel, err)
		}
		det, err := detection(events, svcs)
		if err != nil {
			return err
		}
		runs[parallel] = &runFigures{wall: wall, detection: det}
		if parallel == 0 {
			if err := breakdown(events, svcs, path, own, wall); err != nil {
				return err
			}
		}
	}

	allDet := slices.Concat(runs[1].detection, runs[0].detection)
	fmt.Printf("Critical path (%d services): %s\n", len(path), strings.Join(path, " → "))
	fmt.Printf("%-58s %10s\n", "measure", "value")
	row := func(name string, d time.Duration) { fmt.Printf("%-58s %10s\n", name, d.Round(time.Millisecond)) }
	row("critical-path bound (own restart-to-ready + settle)", bound)
	row("sum of own restart-to-ready + settle (sequential bound)", sum)
	row("shell loop (systemctl restart + curl poll + sleep)", shellWall)
	row("rollout run --parallel 1", runs[1].wall)
	row("rollout run --parallel 0 (unbounded)", runs[0].wall)
	fmt.Printf("%-58s %10.3f  (target ≤ 1.10)\n", "unbounded / critical-path bound", float64(runs[0].wall)/float64(bound))
	fmt.Printf("%-58s %10.3f  (target ≤ 1.00)\n", "--parallel 1 / shell loop", float64(runs[1].wall)/float64(shellWall))
	fmt.Printf("%-58s %10s  (target ≤ 50ms)\n", fmt.Sprintf("health detection p50 (%d checks)", len(allDet)), percentile(allDet, 50).Round(100*time.Microsecond))
	fmt.Printf("%-58s %10s\n", "health detection p90", percentile(allDet, 90).Round(100*time.Microsecond))
	fmt.Printf("%-58s %10s\n", "health detection max", percentile(allDet, 100).Round(100*time.Microsecond))
	fmt.Printf("%-58s %10s / %s\n", "health detection p50, --parallel 1 / 0", percentile(runs[1].detection, 50).Round(100*time.Microsecond), percentile(runs[0].detection, 50).Round(100*time.Microsecond))
	fmt.Println()
	return nil
}

func minDelay(svcs []*benchService) time.Duration {
	return slices.MinFunc(svcs, func(a, b *benchService) int { return int(a.Delay - b.Delay) }).Delay
}

func maxDelay(svcs []*benchService) time.Duration {
	return slices.MaxFunc(svcs, func(a, b *benchService) int { return int(a.Delay - b.Delay) }).Delay
}

// writeUnits writes one testsvc unit per service of ref, in ref's order.
// Ready delays spread over 150–500 ms by a fixed rule, so every run of the
// benchmark simulates the same platform.
func writeUnits(m *systemdtest.Manager, ref *planner.Plan, bin, work string) ([]*benchService, error) {
	var svcs []*benchService
	for i, rs := range ref.Services {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &benchService{
			Name:  rs.Name,
			Unit:  "bench-" + strings.ReplaceAll(rs.Name, ".", "-") + ".service",
			Port:  port,
			Dir:   filepath.Join(work, "srv", rs.Name),
			Delay: 150*time.Millisecond + time.Duration((i*7)%11)*35*time.Millisecond,
			Needs: rs.Needs,
		}
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, err
		}
		unit := systemdtest.HTTPServiceUnit(s.Name, bin, s.Port, s.Dir, systemdtest.UnitOptions{
			Args: []string{"-ready-delay=" + s.Delay.String()},
		})
		if err := os.WriteFile(filepath.Join(m.UnitDir, s.Unit), []byte(unit), 0o644); err != nil {
			return nil, err
		}
		svcs = append(svcs, s)
	}
	return svcs, nil
}

// nextPort is where freePort looks next. The services' ports lie below the
// kernel's ephemeral range (32768 and up): while a service restarts its
// port is unbound, and the thousands of health probes' outgoing
// connections must not take it as their source port.
var nextPort = 20000 + os.Getpid()%5000

func freePort() (int, error) {
	for ; nextPort < 32000; nextPort++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", nextPort))
		if err != nil {
			continue
		}
		ln.Close()
		nextPort++
		return nextPort - 1, nil
	}
	return 0, errors.New("no free port below 32000")
}

func startAll(ctx context.Context, m *systemdtest.Manager, svcs []*benchService) error {
	conn, err := m.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range svcs {
		if _, err := conn.StartUnitContext(ctx, s.Unit, "replace", nil); err != nil {
			return fmt.Errorf("starting %s: %w", s.Unit, err)
		}
	}
	for _, s := range svcs {
		if _, err := waitReady(s, time.Time{}, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

var client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// readyAt asks the service when its current process began to listen.
func readyAt(s *benchService) (time.Time, error) {
	resp, err := client.Get(s.url("/ready-at"))
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return time.Time{}, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s /ready-at: %q", s.Name, b)
	}
	return time.Unix(0, ns), nil
}

// waitReady polls every 2 ms until a process of s that began listening
// after since answers, and returns when it began.
func waitReady(s *benchService, since time.Time, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if at, err := readyAt(s); err == nil && at.After(since) {
			return at, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.Dir, "out.log"))
	return time.Time{}, fmt.Errorf("%s (%s, port %d) not ready within %s; its output:\n%s", s.Name, s.Unit, s.Port, limit, log)
}

// restartToReady restarts s alone and returns how long its new process
// took to listen: the restart job plus its startup, no polling error.
func restartToReady(ctx context.Context, m *systemdtest.Manager, s *benchService) (time.Duration, error) {
	conn, err := m.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	t0 := time.Now()
	ch := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, s.Unit, "replace", ch); err != nil {
		return 0, fmt.Errorf("restarting %s: %w", s.Unit, err)
	}
	if res := <-ch; res != "done" {
		return 0, fmt.Errorf("restarting %s: job %s", s.Unit, res)
	}
	at, err := waitReady(s, t0, 30*time.Second)
	if err != nil {
		return 0, err
	}
	return at.Sub(t0), nil
}

// shellLoop is the restart script an operator would write: in dependency
// order, restart, poll health with curl, settle.
func shellLoop(svcs []*benchService) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\nset -euo pipefail\n")
	fmt.Fprintf(&b, "settle=%g\n", settle.Seconds())
	b.WriteString("restart() {\n  systemctl --user restart \"$1\"\n")
	b.WriteString("  until curl -fsS -o /dev/null --max-time 2 \"$2\"; do sleep 0.1; done\n")
	b.WriteString("  sleep \"$settle\"\n}\n")
	for _, s := range svcs {
		fmt.Fprintf(&b, "restart %s %s\n", s.Unit, s.url("/health"))
	}
	return b.String()
}

// benchPlan is the simulated platform as a plan: restart, verify health
// over http, settle.
func benchPlan(svcs []*benchService) string {
	var b strings.Builder
	fmt.Fprintf(&b, `pipeline "svc" {
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = %q }
}
`, settle.String())
	for _, s := range svcs {
		var needs []string
		for _, n := range s.Needs {
			needs = append(needs, strconv.Quote(n))
		}
		fmt.Fprintf(&b, `service %q {
  unit       = %q
  type       = "svc"
  depends_on = [%s]
  health "http" {
    url      = %q
    timeout  = "10s"
    retries  = 3
    interval = "1s"
  }
}
`, s.Name, s.Unit, strings.Join(needs, ", "), s.url("/health"))
	}
	b.WriteString("plan \"bench\" {}\n")
	return b.String()
}

// detection reads a run's events and each service's ready time: from the
// moment the restarted process listened to its verify step passing.
func detection(eventsPath string, svcs []*benchService) ([]time.Duration, error) {
	f, err := os.Open(eventsPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	evs, _, err := executor.ReadEvents(bufio.NewReader(f))
	if err != nil {
		return nil, err
	}
	verified := map[string]time.Time{}
	for _, e := range evs {
		if e.Event == executor.StepSuccess && e.Step == "verify" && e.Phase == "" {
			verified[e.Service] = e.Time
		}
	}
	var out []time.Duration
	for _, s := range svcs {
		v, ok := verified[s.Name]
		if !ok {
			return nil, fmt.Errorf("%s: no verify STEP_SUCCESS in %s", s.Name, eventsPath)
		}
		at, err := readyAt(s)
		if err != nil {
			return nil, err
		}
		out = append(out, v.Sub(at))
	}
	return out, nil
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func timed(f func() error) (time.Duration, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0), err
}

// runEnv runs a command with the manager's environment, its output
// kept for the error.
func runEnv(m *systemdtest.Manager, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), m.Env()...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out.tail())
	}
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.b) > 4000 {
		return "..." + string(s.b[len(s.b)-4000:])
	}
	return string(s.b)
}

func goBuild(dir, name, pkg string) (string, error) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out := filepath.Join(dir, name)
	b, err := exec.Command(goBin, "build", "-o", out, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v: %s", pkg, err, b)
	}
	return out, nil
}

func writeFile(path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// breakdown shows where the unbounded run's time went along the critical
// path: for each service, the wait between its last dependency's success
// and its own start (scheduling), its restart-to-ready in this run against
// its own alone (contention), the detection latency, and the settle step's
// overshoot; and the process's time outside RUN_START..RUN_SUCCESS (start
// up: load and compile the plan, connect, lock).
func breakdown(eventsPath string, svcs []*benchService, path []string, own map[string]time.Duration, wall time.Duration) error {
	f, err := os.Open(eventsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	evs, _, err := executor.ReadEvents(bufio.NewReader(f))
	if err != nil {
		return err
	}
	byName := map[string]*benchService{}
	for _, s := range svcs {
		byName[s.Name] = s
	}
	type times struct{ start, verified, done time.Time }
	t := map[string]*times{}
	var runStart, runEnd time.Time
	for _, e := range evs {
		if t[e.Service] == nil {
			t[e.Service] = &times{}
		}
		switch {
		case e.Event == executor.RunStart:
			runStart = e.Time
		case e.Event == executor.RunSuccess || e.Event == executor.RunFailed:
			runEnd = e.Time
		case e.Event == executor.ServiceRestartStart:
			t[e.Service].start = e.Time
		case e.Event == executor.StepSuccess && e.Step == "verify" && e.Phase == "":
			t[e.Service].verified = e.Time
		case e.Event == executor.ServiceRestartSuccess:
			t[e.Service].done = e.Time
		}
	}
	fmt.Printf("Unbounded run, along the critical path (ms):\n%-22s %8s %8s %8s %8s %8s\n", "service", "sched", "ready", "alone", "detect", "settle+")
	var sched, extra, detect, settleOver time.Duration
	prevDone := runStart
	for _, name := range path {
		s, st := byName[name], t[name]
		at, err := readyAt(s)
		if err != nil {
			return err
		}
		r := []time.Duration{st.start.Sub(prevDone), at.Sub(st.start), own[name], st.verified.Sub(at), st.done.Sub(st.verified) - settle}
		fmt.Printf("%-22s %8d %8d %8d %8d %8d\n", name, r[0].Milliseconds(), r[1].Milliseconds(), r[2].Milliseconds(), r[3].Milliseconds(), r[4].Milliseconds())
		sched += r[0]
		extra += r[1] - r[2]
		detect += r[3]
		settleOver += r[4]
		prevDone = st.done
	}
	fmt.Printf("totals: scheduling %s, restarts slower than alone %s, detection %s, settle overshoot %s, after the last service %s, process outside the run %s\n\n",
		sched.Round(time.Millisecond), extra.Round(time.Millisecond), detect.Round(time.Millisecond), settleOver.Round(time.Millisecond),
		runEnd.Sub(prevDone).Round(time.Millisecond), (wall - runEnd.Sub(runStart)).Round(time.Millisecond))
	return nil
}

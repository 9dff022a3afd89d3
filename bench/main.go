// Command bench measures how close `rollout run` gets to the physical
// limit of a restart, and how it compares with what an operator would use
// instead (see docs/performance.md). It takes minutes, so it is a
// program, not part of `go test ./...`:
//
//	go run ./bench                       # 24 and 90 services, 5 rounds
//	go run ./bench -dags 90 -rounds 3    # one size, fewer rounds
//	go run ./bench -skip-platform        # engine overhead only, no systemd
//
// On a real private `systemd --user` manager (internal/systemdtest) it
// simulates platforms of small HTTP services (testsvc) that become ready
// 200–300 ms after they start, and for each measures:
//
//   - the critical-path bound: each service restarted alone (restart job,
//     then until its new process listens, read from its /ready-at: no
//     polling error), the median of -bound-samples such restarts, plus
//     the plan's fixed settle; the heaviest chain of those through the
//     DAG;
//   - `rollout run --parallel 0` (unbounded);
//   - a level-by-level shell script: one `systemctl --user restart` of a
//     whole dependency level, every health polled at once, settle;
//   - Ansible (when ansible-playbook is installed): one play per level,
//     strategy free, local connection;
//   - an ideal client inside the benchmark (bench/ideal.go): the true
//     critical path known, restarts sent in its order, none of a tool's
//     costs; ideal client / bound is the machine's share of a run's
//     excess over the bound, rollout / ideal client rollout's;
//
// in -rounds interleaved rounds, reporting medians. Each rollout binary
// appends every round's run to one events log, as an operator's log
// accumulates: a run ranks services by the earlier runs' durations, so
// round 1 runs without history. BENCH_OUTPUT=FILE appends every
// command's output to FILE (with ROLLOUT_PHASES=1: where each run's
// start-up went). For the DAGs of -seq-dags it also compares `rollout
// run --parallel 1` with an operator's shell loop polling at the same
// granularity. Last, engine overhead: the
// executor with the real step builder over a fake systemd that restarts
// instantly, for 1,000 and 10,000 services.
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

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/planner/dag"
)

// settle is the bench pipeline's stabilize window, and the baselines'
// sleep after each service or level: a fixed wait the bound must include.
const settle = 100 * time.Millisecond

type benchOptions struct {
	dags          []string
	planPath      string
	rounds        int
	boundSamples  int
	seqDags       []string
	seqRounds     int
	ansible       bool
	verbose       bool
	keep          bool
	baselines     []string // NAME=PATH
	ansibleRounds int
}

func main() {
	var o benchOptions
	dags := flag.String("dags", "24,90", "the simulated platforms, comma-separated: 24 (8 chains of 3), 90 (levels of 30, 30, 20, 10), platform (the edges of -plan)")
	flag.StringVar(&o.planPath, "plan", "plans/platform.hcl", "the plan whose dependency edges the platform DAG copies")
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds of rollout, the level script and Ansible per DAG; medians are reported")
	flag.IntVar(&o.boundSamples, "bound-samples", 3, "restarts of each service alone; the bound uses each service's median")
	seqDags := flag.String("seq-dags", "24", "DAGs on which `rollout run --parallel 1` is compared with the shell loop (empty: none)")
	flag.IntVar(&o.seqRounds, "seq-rounds", 3, "interleaved rounds of the sequential comparison")
	skipAnsible := flag.Bool("skip-ansible", false, "do not run Ansible even when it is installed")
	flag.IntVar(&o.ansibleRounds, "ansible-rounds", 0, "rounds in which Ansible runs too (default: every round); Ansible takes tens of seconds a run")
	flag.Func("baseline", "`NAME=PATH`: another rollout binary to run beside this one in every round (A/B of an engine change); repeatable", func(v string) error {
		if name, path, ok := strings.Cut(v, "="); !ok || name == "" || path == "" {
			return errors.New("want NAME=PATH")
		}
		o.baselines = append(o.baselines, v)
		return nil
	})
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (plans, scripts, events logs) and print its path")
	flag.BoolVar(&o.verbose, "v", false, "print every round's figures and the breakdown of every rollout run")
	skipPlatform := flag.Bool("skip-platform", false, "skip the systemd measurements (engine overhead only)")
	skipEngine := flag.Bool("skip-engine", false, "skip the engine-overhead benchmark")
	skipZD := flag.Bool("skip-zero-downtime", false, "skip the zero-downtime scenarios (HAProxy, nginx)")
	fleet := flag.Bool("fleet", false, "only the fleet benchmark: 3 hosts × 30 instances over ssh (needs root and openssh-server)")
	flag.Parse()
	o.dags = splitList(*dags)
	o.seqDags = splitList(*seqDags)
	o.ansible = !*skipAnsible
	if o.rounds < 1 || o.boundSamples < 1 || o.seqRounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds, -bound-samples and -seq-rounds must be at least 1")
		os.Exit(2)
	}
	if *fleet {
		if err := fleetBench(o.rounds); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if !*skipPlatform {
		if err := platformBench(o); err != nil {
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

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
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

// env is what the benchmark has built and started, shared by the DAGs.
type env struct {
	m       *systemdtest.Manager
	work    string
	testsvc string
	rollout string
	ansible string // ansible-playbook, "" to skip

	lastCPU time.Duration // CPU time of the last runEnv's process and its children
	busPID  int           // the manager's dbus-daemon
}

func platformBench(o benchOptions) error {
	m, stop, err := systemdtest.StartMain()
	if err != nil {
		return fmt.Errorf("starting a systemd --user manager: %w", err)
	}
	defer stop()
	work, err := os.MkdirTemp("", "rollout-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Printf("work directory (kept): %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	e := &env{m: m, work: work}
	if e.testsvc, err = goBuild(work, "testsvc", "github.com/rollout-sh/rollout/internal/testsvc"); err != nil {
		return err
	}
	if e.rollout, err = goBuild(work, "rollout", "github.com/rollout-sh/rollout/cmd/rollout"); err != nil {
		return err
	}
	if o.ansible {
		if path, ok := ansibleAvailable(); ok {
			e.ansible = path
		} else {
			fmt.Println("Ansible: skipped, ansible-playbook is not installed (Debian: apt-get install -y ansible-core)")
		}
	} else {
		fmt.Println("Ansible: skipped (-skip-ansible)")
	}
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("%d CPUs, host %s, load average at start %s\n", runtime.NumCPU(), host, strings.Join(strings.Fields(string(load))[:3], " "))
	for _, name := range o.dags {
		title, defs, err := dagFor(name, o.planPath)
		if err != nil {
			return err
		}
		if err := e.dagBench(o, name, title, defs, slices.Contains(o.seqDags, name)); err != nil {
			return fmt.Errorf("DAG %s: %w", name, err)
		}
	}
	return nil
}

// dagBench measures one simulated platform.
func (e *env) dagBench(o benchOptions, name, title string, defs []svcDef, sequential bool) error {
	ctx := context.Background()
	dir := filepath.Join(e.work, "dag-"+name)
	svcs, err := e.writeUnits(name, defs, dir)
	if err != nil {
		return err
	}
	conn, err := e.m.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	if err := startAll(ctx, e.m, svcs); err != nil {
		return err
	}
	defer stopAll(ctx, e.m, svcs)
	lv := levels(svcs)
	fmt.Printf("\n== %s: %d dependency levels, ready delays %s–%s, settle %s\n", title, len(lv), minDelay(svcs), maxDelay(svcs), settle)

	// 1. The bound: each service alone, the median of its samples.
	samples := map[string][]time.Duration{}
	for range o.boundSamples {
		for _, s := range svcs {
			d, err := restartToReady(ctx, e.m, s)
			if err != nil {
				return err
			}
			samples[s.Name] = append(samples[s.Name], d)
		}
	}
	own := map[string]time.Duration{}
	for n, ds := range samples {
		own[n] = percentile(ds, 50)
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
	fmt.Printf("critical path (%d services): %s\n", len(path), strings.Join(path, " → "))
	fmt.Printf("critical-path bound (median of %d restarts alone per service, + settle): %s\n", o.boundSamples, bound.Round(time.Millisecond))

	// 2. Interleaved rounds; the order rotates so that no contender
	// always runs on the machine as the one before left it.
	planFile := filepath.Join(dir, "bench.hcl")
	writeFile(planFile, benchPlan(svcs))
	levelFile := filepath.Join(dir, "restart-levels.sh")
	writeFile(levelFile, levelScript(svcs))
	var playbook string
	if e.ansible != "" {
		if playbook, err = writeAnsible(filepath.Join(dir, "ansible"), e.m, svcs); err != nil {
			return err
		}
	}
	type contender struct {
		name string
		run  func() error
		// timed, when set, runs the contender and returns its own
		// measure of its wall time (the ideal client's excludes its
		// connection, open before the clock starts).
		timed func() (time.Duration, error)
	}
	var runs []runFigures
	contenders := []contender{
		{name: "rollout run --parallel 0", run: func() error {
			// One events log for every round, as an operator's: each
			// run learns from the ones before it (round 1 has no history).
			events := filepath.Join(dir, "events-p0.jsonl")
			wall, err := timed(func() error {
				return e.runEnv(nil, e.rollout, "run", planFile, "--user", "--no-tty", "--events", events, "--parallel", "0")
			})
			if err != nil {
				return err
			}
			f, err := breakdown(events, svcs, path, own, wall)
			if err != nil {
				return err
			}
			runs = append(runs, f)
			return nil
		}},
		{name: "level script", run: func() error { return e.runEnv(nil, "bash", levelFile) }},
	}
	idealConn, err := e.m.Conn(ctx)
	if err != nil {
		return err
	}
	defer idealConn.Close()
	ideal := newIdealClient(idealConn, svcs, own)
	contenders = append(contenders, contender{name: idealName, timed: func() (time.Duration, error) { return ideal.run(ctx) }})
	for _, b := range o.baselines {
		name, bin, _ := strings.Cut(b, "=")
		contenders = append(contenders, contender{name: name + " --parallel 0", run: func() error {
			events := filepath.Join(dir, fmt.Sprintf("events-%s.jsonl", name))
			return e.runEnv(nil, bin, "run", planFile, "--user", "--no-tty", "--events", events, "--parallel", "0")
		}})
	}
	if playbook != "" {
		adir := filepath.Dir(playbook)
		contenders = append(contenders, contender{name: "ansible-playbook", run: func() error {
			return e.runEnv([]string{"ANSIBLE_CONFIG=" + filepath.Join(adir, "ansible.cfg")}, e.ansible, "-i", filepath.Join(adir, "inventory.ini"), playbook)
		}})
	}
	walls := map[string][]time.Duration{}
	cpus := map[string][]time.Duration{}   // the process tree's CPU time
	sdCPUs := map[string][]time.Duration{} // the manager's and its bus's
	for r := range o.rounds {
		for i := range contenders {
			c := contenders[(i+r)%len(contenders)]
			if c.name == "ansible-playbook" && o.ansibleRounds > 0 && r >= o.ansibleRounds {
				continue
			}
			time.Sleep(300 * time.Millisecond) // let the last run's processes settle
			sd0 := e.systemdCPU()
			var wall time.Duration
			switch {
			case c.name == contenders[0].name:
				n := len(runs)
				if err := c.run(); err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
				wall = runs[n].wall
			case c.timed != nil:
				e.lastCPU = 0 // in the benchmark's own process
				if wall, err = c.timed(); err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
			default:
				if wall, err = timed(func() error { return c.run() }); err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
			}
			walls[c.name] = append(walls[c.name], wall)
			cpus[c.name] = append(cpus[c.name], e.lastCPU)
			sdCPUs[c.name] = append(sdCPUs[c.name], e.systemdCPU()-sd0)
			if o.verbose {
				fmt.Printf("  round %d: %-26s %s\n", r+1, c.name, wall.Round(time.Millisecond))
			}
		}
	}

	fmt.Printf("%-28s %9s %9s %9s %5s %9s %9s\n", "", "median", "min", "max", "runs", "CPU", "systemd")
	for _, c := range contenders {
		ws := walls[c.name]
		cpu := ms(percentile(cpus[c.name], 50))
		if c.timed != nil {
			cpu = "—" // in the benchmark's process
		}
		fmt.Printf("%-28s %9s %9s %9s %5d %9s %9s\n", c.name, ms(percentile(ws, 50)), ms(slices.Min(ws)), ms(slices.Max(ws)), len(ws),
			cpu, ms(percentile(sdCPUs[c.name], 50)))
	}
	fmt.Println("(CPU: median user+system time of the process and its children; systemd: of the manager and its dbus-daemon during the run)")
	rollout := percentile(walls[contenders[0].name], 50)
	fmt.Printf("%-40s %7.3f  (goal: ≤ 1.05 at 24 services, ≤ 1.25 at 90)\n", "rollout / critical-path bound", float64(rollout)/float64(bound))
	fmt.Printf("%-40s %7.3f\n", "rollout / level script", float64(rollout)/float64(percentile(walls["level script"], 50)))
	idealWall := percentile(walls[idealName], 50)
	fmt.Printf("%-40s %7.3f  (the machine's share: a client with none of a tool's costs)\n", "ideal client / critical-path bound", float64(idealWall)/float64(bound))
	fmt.Printf("%-40s %7.3f  (rollout's own share)\n", "rollout / ideal client", float64(rollout)/float64(idealWall))
	for _, b := range o.baselines {
		name, _, _ := strings.Cut(b, "=")
		fmt.Printf("%-40s %7.3f\n", "rollout / "+name, float64(rollout)/float64(percentile(walls[name+" --parallel 0"], 50)))
	}
	if playbook != "" {
		fmt.Printf("%-40s %7.2f\n", "ansible / rollout", float64(percentile(walls["ansible-playbook"], 50))/float64(rollout))
	}
	// The breakdown of the median rollout run.
	slices.SortFunc(runs, func(a, b runFigures) int { return int(a.wall - b.wall) })
	med := runs[(len(runs)-1)/2]
	if o.verbose {
		for _, f := range runs {
			fmt.Print(f.text)
		}
	} else {
		fmt.Printf("median rollout run (%s), along the critical path:\n%s", ms(med.wall), med.text)
	}
	var det []time.Duration
	for _, f := range runs {
		det = append(det, f.detection...)
	}
	fmt.Printf("health detection (ready → verify STEP_SUCCESS, %d checks): p50 %s, p90 %s, max %s\n",
		len(det), percentile(det, 50).Round(100*time.Microsecond), percentile(det, 90).Round(100*time.Microsecond), percentile(det, 100).Round(100*time.Microsecond))

	if sequential {
		return e.sequentialBench(o, dir, planFile, svcs)
	}
	return nil
}

// sequentialBench compares `rollout run --parallel 1` with the shell loop,
// both polling health every 10 ms while services come up.
func (e *env) sequentialBench(o benchOptions, dir, planFile string, svcs []*benchService) error {
	loop := filepath.Join(dir, "restart-all.sh")
	writeFile(loop, shellLoop(svcs))
	var sh, ro []time.Duration
	for r := range o.seqRounds {
		for i := range 2 {
			time.Sleep(300 * time.Millisecond)
			if (i+r)%2 == 0 {
				wall, err := timed(func() error { return e.runEnv(nil, "bash", loop) })
				if err != nil {
					return fmt.Errorf("shell loop: %w", err)
				}
				sh = append(sh, wall)
			} else {
				events := filepath.Join(dir, "events-p1.jsonl")
				wall, err := timed(func() error {
					return e.runEnv(nil, e.rollout, "run", planFile, "--user", "--no-tty", "--events", events, "--parallel", "1")
				})
				if err != nil {
					return fmt.Errorf("rollout run --parallel 1: %w", err)
				}
				ro = append(ro, wall)
			}
		}
	}
	fmt.Printf("sequential, %d rounds: shell loop (curl every %s) median %s, rollout run --parallel 1 median %s: %.3f × the shell loop\n",
		o.seqRounds, poll, ms(percentile(sh, 50)), ms(percentile(ro, 50)), float64(percentile(ro, 50))/float64(percentile(sh, 50)))
	return nil
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func minDelay(svcs []*benchService) time.Duration {
	return slices.MinFunc(svcs, func(a, b *benchService) int { return int(a.Delay - b.Delay) }).Delay
}

func maxDelay(svcs []*benchService) time.Duration {
	return slices.MaxFunc(svcs, func(a, b *benchService) int { return int(a.Delay - b.Delay) }).Delay
}

// writeUnits writes one testsvc unit per service, in declaration order.
func (e *env) writeUnits(dagName string, defs []svcDef, dir string) ([]*benchService, error) {
	var svcs []*benchService
	for i, d := range defs {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &benchService{
			Name:  d.Name,
			Unit:  unitName(dagName, d.Name),
			Port:  port,
			Dir:   filepath.Join(dir, "srv", d.Name),
			Delay: readyDelay(i),
			Needs: d.Needs,
		}
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, err
		}
		unit := systemdtest.HTTPServiceUnit(s.Name, e.testsvc, s.Port, s.Dir, systemdtest.UnitOptions{
			Args: []string{"-ready-delay=" + s.Delay.String()},
		})
		if err := os.WriteFile(filepath.Join(e.m.UnitDir, s.Unit), []byte(unit), 0o644); err != nil {
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

// stopAll stops a DAG's services once it is measured, so the next DAG
// runs on an otherwise idle manager.
func stopAll(ctx context.Context, m *systemdtest.Manager, svcs []*benchService) {
	conn, err := m.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, s := range svcs {
		conn.StopUnitContext(ctx, s.Unit, "replace", nil)
	}
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

// runEnv runs a command with the manager's environment and extra, its
// output kept for the error.
func (e *env) runEnv(extra []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(append(os.Environ(), e.m.Env()...), extra...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if f := os.Getenv("BENCH_OUTPUT"); f != "" {
		if fh, ferr := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); ferr == nil {
			out.mu.Lock()
			fmt.Fprintf(fh, "== %s %s\n%s", name, strings.Join(args, " "), out.b)
			out.mu.Unlock()
			fh.Close()
		}
	}
	if cmd.ProcessState != nil {
		e.lastCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out.tail())
	}
	return nil
}

// systemdCPU is the CPU time the manager and its bus daemon have used:
// their share of a run, which the services' own start-up is not.
func (e *env) systemdCPU() time.Duration {
	pid := e.m.ManagerPID()
	if pid == 0 {
		return 0
	}
	if e.busPID == 0 {
		e.busPID = childNamed(pid, "dbus-daemon")
	}
	return cpuTime(pid) + cpuTime(e.busPID)
}

// childNamed finds the child of pid whose command is name, or 0.
func childNamed(pid int, name string) int {
	for _, p := range processes() {
		if p.comm == name && p.ppid == pid {
			return p.pid
		}
	}
	return 0
}

// cpuTime is a process's user + system time from /proc (0 if gone).
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	p, ok := readProc(strconv.Itoa(pid))
	if !ok {
		return 0
	}
	return p.cpu
}

// proc is what the benchmark reads of a process in /proc/PID/stat.
type proc struct {
	pid, ppid int
	comm      string
	cpu       time.Duration // user + system
}

// processes lists the live processes.
func processes() []proc {
	var out []proc
	entries, _ := os.ReadDir("/proc")
	for _, de := range entries {
		if p, ok := readProc(de.Name()); ok {
			out = append(out, p)
		}
	}
	return out
}

// readProc reads /proc/PID/stat; false for what is not a live process.
func readProc(pid string) (proc, bool) {
	n, err := strconv.Atoi(pid)
	if err != nil {
		return proc{}, false
	}
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return proc{}, false
	}
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return proc{}, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return proc{pid: n, ppid: ppid, comm: s[open+1 : end], cpu: time.Duration(utime+stime) * 10 * time.Millisecond}, true // USER_HZ = 100
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

// runFigures is one unbounded rollout run: its wall time, each
// service's detection latency, and the breakdown along the critical path
// as text.
type runFigures struct {
	wall      time.Duration
	detection []time.Duration
	text      string
}

// breakdown shows where an unbounded run's time went along the critical
// path: for each service, the wait between its last dependency's success
// and its own start (scheduling), its restart-to-ready in this run against
// its own alone (contention), the detection latency, and the settle step's
// overshoot; and the process's time outside RUN_START..RUN_SUCCESS (start
// up: load and compile the plan, connect, lock). It reads the services'
// /ready-at, so it runs right after the run.
func breakdown(eventsPath string, svcs []*benchService, path []string, own map[string]time.Duration, wall time.Duration) (runFigures, error) {
	f := runFigures{wall: wall}
	file, err := os.Open(eventsPath)
	if err != nil {
		return f, err
	}
	defer file.Close()
	all, _, err := executor.ReadEvents(bufio.NewReader(file))
	if err != nil {
		return f, err
	}
	// The log holds every round's run; the last is this one.
	runs := executor.Summarize(all)
	if len(runs) == 0 {
		return f, fmt.Errorf("%s: no run", eventsPath)
	}
	evs := runs[len(runs)-1].Events
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
	ready := map[string]time.Time{}
	for _, s := range svcs {
		at, err := readyAt(s)
		if err != nil {
			return f, err
		}
		ready[s.Name] = at
		st := t[s.Name]
		if st == nil || st.verified.IsZero() {
			return f, fmt.Errorf("%s: no verify STEP_SUCCESS in %s", s.Name, eventsPath)
		}
		f.detection = append(f.detection, st.verified.Sub(at))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %-12s %8s %8s %8s %8s %8s  (ms)\n", "service", "sched", "ready", "alone", "detect", "settle+")
	var sched, extra, detect, settleOver time.Duration
	prevDone := runStart
	for _, name := range path {
		st, at := t[name], ready[name]
		r := []time.Duration{st.start.Sub(prevDone), at.Sub(st.start), own[name], st.verified.Sub(at), st.done.Sub(st.verified) - settle}
		fmt.Fprintf(&b, "  %-12s %8d %8d %8d %8d %8d\n", name, r[0].Milliseconds(), r[1].Milliseconds(), r[2].Milliseconds(), r[3].Milliseconds(), r[4].Milliseconds())
		sched += r[0]
		extra += r[1] - r[2]
		detect += r[3]
		settleOver += r[4]
		prevDone = st.done
	}
	fmt.Fprintf(&b, "  totals: scheduling %s, restarts slower than alone %s, detection %s, settle overshoot %s, after the path's last service %s, process outside the run %s\n",
		ms(sched), ms(extra), ms(detect), ms(settleOver), ms(runEnd.Sub(prevDone)), ms(wall-runEnd.Sub(runStart)))
	f.text = b.String()
	return f, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/demosvc"
	"github.com/rollout-sh/rollout/internal/usermanager"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/plans"
	"github.com/rollout-sh/rollout/steps"
)

// demoUnitPrefix starts every unit name the demo creates; cleanup touches
// nothing else.
const demoUnitPrefix = "rollout-demo-"

// demoServiceCommand is the hidden command the demo's units run.
const demoServiceCommand = "demo-service"

// DemoOptions are the inputs of `rollout demo`.
type DemoOptions struct {
	IO          *IOStreams
	Break       string
	Keep        bool
	Parallel    int
	ParallelSet bool
	JSON        bool
	NoTTY       bool
	// Events is the events log; "" means demoEventsPath(), a file apart
	// from the real events log that survives the demo's cleanup.
	Events string
	// Signals delivers interrupts; nil means SIGINT and SIGTERM.
	Signals <-chan os.Signal
}

// NewCmdDemo builds `demo`.
func NewCmdDemo(io *IOStreams, runF func(*DemoOptions) error) *cobra.Command {
	opts := &DemoOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "demo [--break SERVICE] [--keep] [--parallel N] [--json] [--no-tty]",
		Short: "Run a rolling restart of a dozen real demo services, then clean up",
		Long: `Bring up a demo platform of twelve small real HTTP services as systemd units
(rollout-demo-*.service): stores, the APIs that depend on them (sso.api, then
merchant.api, then marketplace.api) and an ML chain (seo.redis, then
seo.rag-retrieval, then seo.classifier). Then deploy v2 of every service with
plans/demo.hcl through the same code path as ` + "`rollout run`" + `, in dependency
order, with the live view on a terminal.

The units go to your own systemd user manager when one is reachable; as root on
a machine without one (a container, CI), the demo starts a private
` + "`systemd --user`" + ` manager and stops it at the end.

--break SERVICE ships a broken v2 to that service: its health check fails after
the restart, it is rolled back to v1, and the services that depend on it are
skipped (exit status 1).

Everything the demo created (units, unit files, processes, files, the private
manager) is removed at the end, also after Ctrl-C, unless --keep. The events
log is kept, so that ` + "`rollout events`" + ` can show the run afterwards.`,
		Example: `  rollout demo
  # see a failed restart rolled back, and its dependents skipped
  rollout demo --break sso.api
  # one service at a time, plain lines, then the run's events
  rollout demo --parallel 1 --no-tty
  rollout events --events ~/.local/state/rollout/demo-events.jsonl --last
  # leave the services running to try rollout run on them
  rollout demo --keep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ParallelSet = cmd.Flags().Changed("parallel")
			if opts.ParallelSet && opts.Parallel < 0 {
				return usageError("`--parallel` must be 0 (unbounded) or more, not %d", opts.Parallel)
			}
			if runF != nil {
				return runF(opts)
			}
			return demoRun(opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Break, "break", "", "ship a broken release to this `SERVICE`, to see its rollback")
	fs.BoolVar(&opts.Keep, "keep", false, "leave the demo running at the end and print how to clean up")
	fs.IntVar(&opts.Parallel, "parallel", 4, "how many services may restart at once (0 = unbounded)")
	fs.BoolVar(&opts.JSON, "json", false, "stream the run's events as JSON lines on stdout")
	fs.BoolVar(&opts.NoTTY, "no-tty", false, "plain output even on a terminal")
	fs.StringVar(&opts.Events, "events", "", "append events to this JSONL `FILE` (default: demo-events.jsonl in the per-user state directory)")
	return cmd
}

// newCmdDemoService is the hidden command the demo's units run: the demo
// service of internal/demosvc, inside this binary so nothing else needs
// building.
func newCmdDemoService() *cobra.Command {
	return &cobra.Command{
		Use:                demoServiceCommand + " -addr HOST:PORT -dir DIR",
		Short:              "Serve one demo service (run by the units of `rollout demo`)",
		Example:            "  rollout demo-service -addr 127.0.0.1:41001 -dir /tmp/rollout-demo-1/srv/sso.api",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return silentExit(demosvc.Main(args))
		},
	}
}

// demoEventsPath is where the demo's events go by default: beside the
// per-user events log but in a file of its own, so that demo runs never
// mix with the history of real ones (as root the real log is
// /var/log/rollout/events.jsonl).
func demoEventsPath(getenv func(string) string) string {
	if dir := getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "rollout", "demo-events.jsonl")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "rollout", "demo-events.jsonl")
	}
	return filepath.Join(os.TempDir(), "rollout-demo-events-"+strconv.Itoa(os.Getuid())+".jsonl")
}

// demoService is one service of the demo platform, as the plan places it.
type demoService struct {
	Name    string
	Unit    string
	Port    int
	Dir     string // working_dir: the code at v1
	Release string // what --deploy ships: v2
	Log     string
}

// demoManager is the systemd user manager the demo's units run on.
type demoManager struct {
	describe string // the one line that says which manager and why
	address  string // what steps.Connect dials
	unitDir  string
	private  *usermanager.Manager // nil: the user's own manager
}

// demo is one run of `rollout demo`: everything it created, so that
// cleanup removes exactly that.
type demo struct {
	opts     *DemoOptions
	w        io.Writer // narrative: stdout, or stderr under --json
	dir      string
	bin      string
	mgr      *demoManager
	sd       *steps.DBus
	services []*demoService
	units    []string // unit files written (full paths)
	portBase int
}

// demo phases, for the signal handler.
const (
	phaseSetup int32 = iota
	phaseRun
	phaseCleanup
)

func demoRun(opts *DemoOptions) (err error) {
	began := time.Now()
	getenv := opts.IO.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if opts.Events == "" {
		opts.Events = demoEventsPath(getenv)
	}
	d := &demo{opts: opts, w: opts.IO.Out}
	if opts.JSON {
		d.w = opts.IO.ErrOut
	}

	// One handler for the whole demo: during setup an interrupt stops the
	// setup, during the run it goes to the run (which rolls back what is
	// in flight), during cleanup it is ignored so cleanup can finish.
	sigs := opts.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(ch)
		sigs = ch
		// `rollout demo --json | head` closes our stdout early; by default
		// the next write would kill us with SIGPIPE before cleanup (seen:
		// the demo directory and the manager's cgroups were left). Ignored,
		// the write fails instead and the demo cleans up.
		signal.Ignore(syscall.SIGPIPE)
	}
	var phase atomic.Int32
	var setupInterrupted atomic.Bool
	setupCtx, cancelSetup := context.WithCancel(context.Background())
	defer cancelSetup()
	runSigs := make(chan os.Signal, 2)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				switch phase.Load() {
				case phaseSetup:
					setupInterrupted.Store(true)
					fmt.Fprintln(opts.IO.ErrOut, "rollout demo: interrupted: stopping the setup and cleaning up.")
					cancelSetup()
				case phaseRun:
					select {
					case runSigs <- s:
					default:
					}
				default:
					fmt.Fprintln(opts.IO.ErrOut, "rollout demo: cleaning up, one moment.")
				}
			case <-done:
				return
			}
		}
	}()

	setupDone := false
	defer func() {
		phase.Store(phaseCleanup)
		if opts.Keep && setupDone {
			d.printKeep()
			d.printNext()
			return
		}
		d.cleanup()
		if setupDone {
			d.printNext()
			fmt.Fprintf(d.w, "The demo took %s.\n", time.Since(began).Round(100*time.Millisecond))
		}
	}()

	if err := d.setup(setupCtx); err != nil {
		if setupInterrupted.Load() {
			return silentExit(exitInterrupted)
		}
		return err
	}
	if setupInterrupted.Load() {
		return silentExit(exitInterrupted)
	}
	setupDone = true

	phase.Store(phaseRun)
	runErr := d.run(runSigs)
	d.report()
	return runErr
}

// setup creates the demo directory, picks the manager, writes the
// services' code, releases and units, and starts them.
func (d *demo) setup(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "rollout-demo-")
	if err != nil {
		return fmt.Errorf("creating the demo directory: %w", err)
	}
	d.dir = dir
	if err := os.WriteFile(d.planPath(), plans.Demo, 0o644); err != nil {
		return err
	}
	d.portBase, err = findPortBase(12)
	if err != nil {
		return err
	}
	plan, err := d.compile()
	if err != nil {
		return err
	}
	if d.opts.Break != "" {
		if !hasService(plan, d.opts.Break) {
			return usageError("`--break %s`: no such demo service; choose one of: %s", d.opts.Break, strings.Join(plan.Order, ", "))
		}
	}
	if err := d.layout(plan); err != nil {
		return err
	}
	if err := d.copyBinary(); err != nil {
		return err
	}

	d.mgr, err = chooseManager(d.opts, d.dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.w, "rollout demo: %s.\n", d.mgr.describe)
	fmt.Fprintf(d.w, "Demo directory: %s (code in srv/, releases in release/, the plan in demo.hcl)\n", d.dir)

	d.sd, err = steps.Connect(context.Background(), steps.ConnectOptions{Address: d.mgr.address, CallTimeout: 10 * time.Second, JobTimeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("connecting to the systemd manager: %w", err)
	}
	for _, s := range d.services {
		path := filepath.Join(d.mgr.unitDir, s.Unit)
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("unit file %s already exists: another demo is running, or one was kept (--keep); clean it up first", path)
		}
	}
	if err := os.MkdirAll(d.mgr.unitDir, 0o755); err != nil {
		return err
	}
	for _, s := range d.services {
		path := filepath.Join(d.mgr.unitDir, s.Unit)
		d.units = append(d.units, path)
		if err := os.WriteFile(path, []byte(d.unitText(s)), 0o644); err != nil {
			return err
		}
	}
	if err := d.sd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}

	started := time.Now()
	fmt.Fprintf(d.w, "Starting %s at v1 ...", plural(len(d.services), "service"))
	errs := make([]error, len(d.services))
	var wg sync.WaitGroup
	for i, s := range d.services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.sd.Do(ctx, steps.OpStart, s.Unit); err != nil {
				errs[i] = fmt.Errorf("starting %s: %w (its log: %s)", s.Unit, err, s.Log)
				return
			}
			if err := waitHealthy(ctx, s.Port, 15*time.Second); err != nil {
				errs[i] = fmt.Errorf("%s: %w (its log: %s)", s.Name, err, s.Log)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(d.w)
		return err
	}
	fmt.Fprintf(d.w, " all healthy (%s).\n", time.Since(started).Round(10*time.Millisecond))
	if d.opts.Break != "" {
		fmt.Fprintf(d.w, "Shipping a broken release to %s: its v2 answers /health with 503, so the restart fails and is rolled back.\n", d.opts.Break)
	}
	return nil
}

func (d *demo) planPath() string { return filepath.Join(d.dir, "demo.hcl") }

func (d *demo) vars() []string {
	return []string{"dir=" + d.dir, "port_base=" + strconv.Itoa(d.portBase)}
}

func (d *demo) runFlags() planFlags {
	return planFlags{
		Vars:        d.vars(),
		Parallel:    d.opts.Parallel,
		ParallelSet: d.opts.ParallelSet,
		Deploy:      true,
		DeployPath:  filepath.Join(d.dir, "release"),
	}
}

// compile compiles the demo plan as the run will, to learn each service's
// unit, directory and port from it: the plan is the one place they are
// written down.
func (d *demo) compile() (*planner.Plan, error) {
	flags := d.runFlags()
	vars, err := parseVars(flags.Vars)
	if err != nil {
		return nil, err
	}
	c := compileFile(d.planPath(), vars, flags.compileOptions())
	if c.Plan == nil {
		return nil, fmt.Errorf("the demo plan does not compile: %s", c.Diags.Error())
	}
	d.services = nil
	for _, svc := range c.Plan.Services {
		if !strings.HasPrefix(svc.Unit, demoUnitPrefix) {
			return nil, fmt.Errorf("demo service %s has unit %s, which does not start with %s", svc.Name, svc.Unit, demoUnitPrefix)
		}
		port, err := healthPort(svc.Health)
		if err != nil {
			return nil, fmt.Errorf("demo service %s: %w", svc.Name, err)
		}
		d.services = append(d.services, &demoService{
			Name:    svc.Name,
			Unit:    svc.Unit,
			Port:    port,
			Dir:     svc.WorkingDir,
			Release: filepath.Join(d.dir, "release", svc.Name),
			Log:     filepath.Join(d.dir, "logs", svc.Name+".log"),
		})
	}
	return c.Plan, nil
}

func hasService(plan *planner.Plan, name string) bool {
	for _, s := range plan.Services {
		if s.Name == name {
			return true
		}
	}
	return false
}

func healthPort(h *planner.Health) (int, error) {
	if h == nil || h.URL == "" {
		return 0, errors.New("no http health check to learn its port from")
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return 0, fmt.Errorf("health URL %s has no port", h.URL)
	}
	return port, nil
}

// layout writes each service's code (v1) and release (v2, or a broken v2
// for --break).
func (d *demo) layout(plan *planner.Plan) error {
	write := func(path, content string) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, []byte(content), 0o644)
	}
	for _, s := range d.services {
		if !strings.HasPrefix(s.Dir, d.dir+string(filepath.Separator)) {
			return fmt.Errorf("demo service %s has working_dir %s outside the demo directory", s.Name, s.Dir)
		}
		files := map[string]string{
			filepath.Join(s.Dir, "VERSION"):     "v1\n",
			filepath.Join(s.Release, "VERSION"): "v2\n",
		}
		if s.Name == d.opts.Break {
			files[filepath.Join(s.Release, "VERSION")] = "v2-broken\n"
			files[filepath.Join(s.Release, "UNHEALTHY")] = "shipped broken by `rollout demo --break`\n"
		}
		for path, content := range files {
			if err := write(path, content); err != nil {
				return err
			}
		}
	}
	return os.MkdirAll(filepath.Join(d.dir, "logs"), 0o755)
}

// copyBinary puts this binary into the demo directory for the units to
// run: `go run` deletes its build when it exits, and a --keep demo must
// still restart afterwards.
func (d *demo) copyBinary() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	d.bin = filepath.Join(d.dir, "bin", "rollout")
	if err := os.MkdirAll(filepath.Dir(d.bin), 0o755); err != nil {
		return err
	}
	dst, err := os.OpenFile(d.bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// unitText is the unit of one demo service. ExecStart's paths are quoted
// (systemd accepts C-style double quotes) in case TMPDIR has spaces.
func (d *demo) unitText(s *demoService) string {
	return fmt.Sprintf(`[Unit]
Description=rollout demo service %s

[Service]
Type=exec
ExecStart=%q %s -addr 127.0.0.1:%d -dir %q
WorkingDirectory=%s
StandardOutput=append:%s
StandardError=inherit
`, s.Name, d.bin, demoServiceCommand, s.Port, s.Dir, s.Dir, s.Log)
}

// chooseManager picks the user's own systemd user manager when it answers,
// else (as root) starts a private one inside dir.
func chooseManager(opts *DemoOptions, dir string) (*demoManager, error) {
	getenv := opts.IO.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	why := "DBUS_SESSION_BUS_ADDRESS is unset and /run/user/" + strconv.Itoa(os.Getuid()) + "/bus does not exist"
	if addr := usermanager.SessionBusAddress(getenv); addr != "" {
		conn, err := usermanager.Probe(addr, 5*time.Second)
		if err == nil {
			conn.Close()
			unitDir, err := userUnitDir(getenv)
			if err != nil {
				return nil, err
			}
			return &demoManager{
				describe: fmt.Sprintf("using your own systemd user manager (%s); the units go to %s and are removed at the end", addr, unitDir),
				address:  addr,
				unitDir:  unitDir,
			}, nil
		}
		why = fmt.Sprintf("the user manager at %s does not answer: %v", addr, err)
	}
	if os.Geteuid() != 0 {
		return nil, usageError("no systemd user manager to run the demo on: %s. Run it from a login session where `systemctl --user` works, or as root, where the demo starts a private manager", why)
	}
	// The manager's cgroup is named after its directory: carrying the demo
	// directory's suffix, it tells whose it is (rollout-sd-<suffix>-N).
	suffix := strings.TrimPrefix(filepath.Base(dir), "rollout-demo-")
	m, err := usermanager.Start(usermanager.Options{Parent: dir, Prefix: "sd-" + suffix + "-", Detach: opts.Keep})
	if err != nil {
		return nil, fmt.Errorf("starting a private systemd user manager: %w", err)
	}
	return &demoManager{
		describe: fmt.Sprintf("using a private systemd user manager (pid %d) started for this demo, because %s", m.PID(), why),
		address:  m.PrivateAddress,
		unitDir:  m.UnitDir,
		private:  m,
	}, nil
}

func userUnitDir(getenv func(string) string) (string, error) {
	config := getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(config) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the user unit directory: %w", err)
		}
		config = filepath.Join(home, ".config")
	}
	return filepath.Join(config, "systemd", "user"), nil
}

// findPortBase finds base such that base+1 ... base+n are free on
// 127.0.0.1 at the moment.
func findPortBase(n int) (int, error) {
	for try := 0; try < 100; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		base := ln.Addr().(*net.TCPAddr).Port - 1
		ln.Close()
		if base+n > 65535 {
			continue
		}
		free := true
		for p := base + 1; p <= base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return base, nil
		}
	}
	return 0, errors.New("found no 12 free consecutive TCP ports on 127.0.0.1")
}

// waitHealthy polls /health until it answers 200.
func waitHealthy(ctx context.Context, port int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		code, _, err := demoGet(ctx, port, "/health")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("/health answered %d", code)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %s: %v", timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func demoGet(ctx context.Context, port int, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// run runs the demo plan through `rollout run`'s own code path.
func (d *demo) run(sigs <-chan os.Signal) error {
	flags := d.runFlags()
	cmdline := []string{"rollout run", d.planPath(), "--user", "--deploy", "--deploy-path", flags.DeployPath}
	for _, v := range flags.Vars {
		cmdline = append(cmdline, "--var", v)
	}
	if d.opts.ParallelSet {
		cmdline = append(cmdline, "--parallel", strconv.Itoa(d.opts.Parallel))
	}
	fmt.Fprintf(d.w, "Deploying v2 to every service, in dependency order:\n  %s\n\n", strings.Join(cmdline, " "))
	address := d.mgr.address
	return runRun(&RunOptions{
		IO:     d.opts.IO,
		File:   d.planPath(),
		Flags:  flags,
		Events: d.opts.Events,
		User:   true,
		JSON:   d.opts.JSON,
		NoTTY:  d.opts.NoTTY,
		Systemd: func(ctx context.Context, _ bool) (steps.Backend, error) {
			return steps.Connect(ctx, steps.ConnectOptions{Address: address})
		},
		Signals:  sigs,
		LockPath: filepath.Join(d.dir, "lock"),
	})
}

// report prints what each service runs now, and what the run did to it
// according to the events log.
func (d *demo) report() {
	outcome := d.lastRunOutcome()
	fmt.Fprintln(d.w, "\nWhat the demo platform runs now:")
	tw := tabwriter.NewWriter(d.w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERVICE\tVERSION\tHEALTH\tIN THE RUN")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range d.services {
		version := "?"
		if code, body, err := demoGet(ctx, s.Port, "/version"); err == nil && code == http.StatusOK {
			version = body
		}
		health := "down"
		if code, _, err := demoGet(ctx, s.Port, "/health"); err == nil {
			health = "ok"
			if code != http.StatusOK {
				health = strconv.Itoa(code)
			}
		}
		what := outcome[s.Name]
		if what == "" {
			what = "not started"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Name, version, health, what)
	}
	tw.Flush()
	fmt.Fprintf(d.w, "Events log (kept): %s\n", d.opts.Events)
}

// lastRunOutcome reads the demo's run back from the events log: service
// name → what happened to it.
func (d *demo) lastRunOutcome() map[string]string {
	out := map[string]string{}
	f, err := os.Open(d.opts.Events)
	if err != nil {
		return out
	}
	defer f.Close()
	events, _, err := executor.ReadEvents(f)
	if err != nil {
		return out
	}
	runID := ""
	for _, e := range events {
		if e.Event == "RUN_START" {
			runID = e.RunID
		}
	}
	for _, e := range events {
		if e.RunID != runID || e.Service == "" {
			continue
		}
		switch e.Event {
		case "SERVICE_RESTART_SUCCESS":
			out[e.Service] = "restarted on v2"
		case "SERVICE_RESTART_FAILED":
			// The rollback's own event says more, whichever comes first.
			if !strings.HasPrefix(out[e.Service], "failed") {
				out[e.Service] = "failed"
			}
		case "ROLLBACK_SUCCESS":
			out[e.Service] = "failed, rolled back to v1"
		case "ROLLBACK_FAILED":
			out[e.Service] = "failed, ROLLBACK FAILED"
		case "SERVICE_SKIPPED":
			if e.Cause != "" {
				out[e.Service] = "skipped: " + e.Cause + " failed"
			} else {
				out[e.Service] = "skipped"
			}
		}
	}
	return out
}

// cleanup removes everything the demo created: it stops the units,
// removes their unit files (and the .backup copies the run made),
// reloads, stops the private manager and removes the demo directory.
// Every part runs even when an earlier one fails.
func (d *demo) cleanup() {
	if d.dir == "" {
		return
	}
	var problems []string
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if d.sd != nil && len(d.units) > 0 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, path := range d.units {
			unit := filepath.Base(path)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.sd.Do(ctx, steps.OpStop, unit); err != nil && !errors.Is(err, steps.ErrNoSuchUnit) {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("stop %s: %v", unit, err))
					mu.Unlock()
				}
				_ = d.sd.Reset(ctx, unit)
			}()
		}
		wg.Wait()
	}
	for _, path := range d.units {
		for _, p := range []string{path, path + ".backup"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				problems = append(problems, err.Error())
			}
		}
	}
	if d.sd != nil {
		if len(d.units) > 0 {
			if err := d.sd.DaemonReload(ctx); err != nil {
				problems = append(problems, "daemon-reload: "+err.Error())
			}
		}
		d.sd.Close()
	}
	what := fmt.Sprintf("stopped %s and removed their unit files", plural(len(d.units), "unit"))
	if d.mgr != nil && d.mgr.private != nil {
		d.mgr.private.Stop()
		what += ", stopped the private manager"
	}
	if err := os.RemoveAll(d.dir); err != nil {
		problems = append(problems, err.Error())
	}
	if d.mgr != nil {
		fmt.Fprintf(d.w, "Cleaned up: %s, removed %s.\n", what, d.dir)
	}
	for _, p := range problems {
		fmt.Fprintf(d.opts.IO.ErrOut, "rollout demo: cleanup: %s\n", p)
	}
}

// printKeep says how to reach the demo that --keep left running, and how
// to remove it.
func (d *demo) printKeep() {
	if d.dir == "" {
		return
	}
	if d.sd != nil {
		d.sd.Close()
	}
	w := d.w
	fmt.Fprintf(w, "\nThe demo is still running (--keep): %s in %s.\n", plural(len(d.units), "unit"), d.dir)
	env := ""
	if m := d.mgr.private; m != nil {
		env = "XDG_RUNTIME_DIR=" + m.RuntimeDir + " DBUS_SESSION_BUS_ADDRESS=" + m.BusAddress + " "
	}
	fmt.Fprintf(w, "Restart a service yourself:\n  %srollout run %s --user --var dir=%s --var port_base=%d --service sso.api\n",
		env, d.planPath(), d.dir, d.portBase)
	fmt.Fprintln(w, "Clean up:")
	if m := d.mgr.private; m != nil {
		// The manager stops its units on SIGTERM; its cgroups stay behind
		// (deepest first, rmdir removes them).
		fmt.Fprintf(w, "  kill %d; sleep 1; find /sys/fs/cgroup -depth -type d -path '*/%s*' -exec rmdir {} +; rm -rf %s\n", m.PID(), m.Cgroup(), d.dir)
		return
	}
	var units []string
	for _, p := range d.units {
		units = append(units, filepath.Base(p))
	}
	fmt.Fprintf(w, "  systemctl --user stop %s\n  rm -f %s/%s*\n  systemctl --user daemon-reload && rm -rf %s\n",
		strings.Join(units, " "), d.mgr.unitDir, demoUnitPrefix, d.dir)
}

// printNext says what to look at and try after the demo.
func (d *demo) printNext() {
	w := d.w
	fmt.Fprintln(w, "\nTry next:")
	fmt.Fprintf(w, "  rollout events --events %s --last   # this run, step by step\n", d.opts.Events)
	if d.opts.Break == "" {
		fmt.Fprintln(w, "  rollout demo --break sso.api   # a failed restart, rolled back; its dependents skipped")
	} else {
		fmt.Fprintln(w, "  rollout demo --break seo.rag-retrieval   # break the ML chain instead")
	}
	fmt.Fprintln(w, "  rollout plan show plans/demo.hcl   # the plan the demo ran (plans/ in the rollout repository)")
}

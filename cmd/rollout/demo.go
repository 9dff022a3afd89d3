package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/internal/demo"
	"github.com/rollout-sh/rollout/internal/demosvc"
	"github.com/rollout-sh/rollout/internal/interrupt"
	"github.com/rollout-sh/rollout/steps"
)

// DemoOptions are the inputs of `rollout demo`.
type DemoOptions struct {
	IO          *IOStreams
	Break       string
	Keep        bool
	Parallel    int
	ParallelSet bool
	JSON        bool
	NoTTY       bool
	// Events is the events log; "" means demo.EventsPath(), a file apart
	// from the real events log that survives the demo's cleanup.
	Events string
	// Signals delivers interrupts; nil means interrupt.Notify.
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
		Use:                demo.ServiceCommand + " -addr HOST:PORT -dir DIR",
		Short:              "Serve one demo service (run by the units of `rollout demo`)",
		Example:            "  rollout demo-service -addr 127.0.0.1:41001 -dir /tmp/rollout-demo-1/apps/sso.api/current",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return silentExit(demosvc.Main(args))
		},
	}
}

// demoSession is one run of `rollout demo`: the platform it builds, and
// where its narrative goes.
type demoSession struct {
	opts     *DemoOptions
	w        io.Writer // narrative: stdout, or stderr under --json
	platform *demo.Platform
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
		opts.Events = demo.EventsPath(getenv)
	}
	d := &demoSession{opts: opts, w: opts.IO.Out}
	if opts.JSON {
		d.w = opts.IO.ErrOut
	}
	d.platform = &demo.Platform{Break: opts.Break, Keep: opts.Keep, Getenv: getenv, Progress: d.w}

	// One handler for the whole demo: during setup an interrupt stops the
	// setup, during the run it goes to the run (which rolls back what is
	// in flight), during cleanup it is ignored so cleanup can finish.
	// interrupt.Notify also keeps `rollout demo --json | head` from dying
	// of SIGPIPE before cleanup (seen: the demo directory and the manager's
	// cgroups were left): the write fails instead and the demo cleans up.
	sigs := opts.Signals
	if sigs == nil {
		var stop func()
		sigs, stop = interrupt.Notify()
		defer stop()
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
			d.platform.Close()
			d.platform.PrintKeep(d.w)
			d.platform.PrintNext(d.w, opts.Events)
			return
		}
		d.platform.CleanupAndSay(d.w, opts.IO.ErrOut)
		if setupDone {
			d.platform.PrintNext(d.w, opts.Events)
			fmt.Fprintf(d.w, "The demo took %s.\n", time.Since(began).Round(100*time.Millisecond))
		}
	}()

	if err := d.platform.Setup(setupCtx); err != nil {
		if setupInterrupted.Load() {
			return silentExit(exitInterrupted)
		}
		var usage *demo.UsageError
		if errors.As(err, &usage) {
			return &exitError{code: exitUsage, err: err}
		}
		return err
	}
	if setupInterrupted.Load() {
		return silentExit(exitInterrupted)
	}
	setupDone = true

	phase.Store(phaseRun)
	runErr := d.run(runSigs)
	d.platform.Report(d.w, opts.Events)
	return runErr
}

// run runs the demo plan through `rollout run`'s own code path.
func (d *demoSession) run(sigs <-chan os.Signal) error {
	p := d.platform
	flags := planFlags{
		Vars:        p.Vars(),
		Parallel:    d.opts.Parallel,
		ParallelSet: d.opts.ParallelSet,
		Deploy:      true,
		DeployPath:  p.DeployPath(),
	}
	cmdline := []string{"rollout run", p.PlanPath(), "--user", "--deploy", "--deploy-path", flags.DeployPath}
	for _, v := range flags.Vars {
		cmdline = append(cmdline, "--var", v)
	}
	if d.opts.ParallelSet {
		cmdline = append(cmdline, "--parallel", strconv.Itoa(d.opts.Parallel))
	}
	fmt.Fprintf(d.w, "Deploying v2 to every service, in dependency order:\n  %s\n\n", strings.Join(cmdline, " "))
	address := p.BusAddress()
	return runRun(&RunOptions{
		IO:     d.opts.IO,
		File:   p.PlanPath(),
		Flags:  flags,
		Events: d.opts.Events,
		User:   true,
		JSON:   d.opts.JSON,
		NoTTY:  d.opts.NoTTY,
		Systemd: func(ctx context.Context, _ bool) (steps.Backend, error) {
			return steps.Connect(ctx, steps.ConnectOptions{Address: address})
		},
		Signals:  sigs,
		LockPath: p.LockPath(),
	})
}

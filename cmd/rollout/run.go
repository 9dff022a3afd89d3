package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/interrupt"
	"github.com/rollout-sh/rollout/internal/notify"
	"github.com/rollout-sh/rollout/internal/phase"
	"github.com/rollout-sh/rollout/internal/runview"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// RunOptions are the inputs of `rollout run`.
type RunOptions struct {
	IO     *IOStreams
	File   string
	Flags  planFlags
	Events string
	User   bool
	JSON   bool
	NoTTY  bool
	// LockWait is how long to wait for a host's lock held by another run
	// (--lock-wait); 0 refuses at once.
	LockWait time.Duration

	// Systemd connects to the manager; tests replace it with a fake or a
	// private manager.
	Systemd func(ctx context.Context, user bool) (steps.Backend, error)
	// Hosts opens the plan's hosts (ssh); tests may replace it.
	Hosts func(ctx context.Context) (*steps.HostSet, error)
	// Signals delivers interrupts; nil means interrupt.Notify.
	Signals <-chan os.Signal
	// LockPath overrides the per-manager lock (tests).
	LockPath string
}

// NewCmdRun builds `run`.
func NewCmdRun(io *IOStreams, runF func(*RunOptions) error) *cobra.Command {
	opts := &RunOptions{IO: io, Systemd: connectSystemd, Hosts: openHosts}
	cmd := &cobra.Command{
		Use:   "run FILE [--service NAME]... [--dry-run] [--force] [--deploy --deploy-path DIR] [--skip-migrations] [--parallel N] [--var K=V]... [--events FILE] [--user] [--json]",
		Short: "Restart the plan's services in dependency order, rolling back any that fails",
		Long: `Restart the services a plan selects, in dependency order. For each service
its pipeline's steps run in order; when a step fails, everything the service's
earlier steps changed is undone (stop, restore code and unit file,
daemon-reload, start, verify health) and no new service starts (on_failure =
"abort") or only those that do not depend on it (on_failure = "continue").

Exit status: 0 all done; 1 a service failed and was rolled back; 2 bad usage,
an invalid plan, or another run holds the lock; 3 a rollback failed and a
person must act; 130 interrupted.

Ctrl-C once: nothing new starts; the services in flight finish or roll back.
Ctrl-C twice: the services in flight are rolled back at once.`,
		Example: `  # preview: resolved steps and read-only checks, nothing changed or written
  rollout run plans/platform.hcl --dry-run
  # restart one service (pnpm restart:rolling --service sso.api)
  rollout run plans/platform.hcl --service sso.api
  # deploy new code, then restart
  rollout run plans/platform.hcl --service sso.api --deploy --deploy-path /tmp/deploy/sso-api
  # emergency: no health checks, no stabilization
  rollout run plans/platform.hcl --service sso.api --force
  # the user's own systemd manager, events as JSON lines
  rollout run plans/demo.hcl --user --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if err := opts.Flags.check(cmd.Flags()); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runRun(opts)
		},
	}
	fs := cmd.Flags()
	addPlanFlags(fs, &opts.Flags)
	fs.BoolVar(&opts.Flags.DryRun, "dry-run", false, "print every step that would run with its resolved arguments; change and write nothing")
	fs.StringVar(&opts.Events, "events", "", "append events to this JSONL `FILE` (default: the plan's events_log, else a per-user state file)")
	fs.BoolVar(&opts.User, "user", false, "talk to the user's systemd manager instead of the system one")
	fs.BoolVar(&opts.JSON, "json", false, "stream events as JSON lines on stdout")
	fs.BoolVar(&opts.NoTTY, "no-tty", false, "plain output even on a terminal")
	fs.DurationVar(&opts.LockWait, "lock-wait", 0, "wait up to `DURATION` for hosts locked by another run (default: refuse at once)")
	return cmd
}

func connectSystemd(ctx context.Context, user bool) (steps.Backend, error) {
	return steps.Connect(ctx, steps.ConnectOptions{User: user})
}

func openHosts(ctx context.Context) (*steps.HostSet, error) {
	return steps.NewHostSet(ctx, steps.SSHConfig{})
}

// hasLocal says whether any of the plan's services runs where rollout runs.
func hasLocal(plan *planner.Plan) bool {
	for _, svc := range plan.Services {
		if svc.Host == nil {
			return true
		}
	}
	return false
}

func runRun(opts *RunOptions) error {
	c, err := loadForRun(opts.IO, opts.File, &opts.Flags)
	if err != nil {
		return err
	}
	plan := c.Plan
	phase.Mark("plan compiled")
	if len(plan.Services) == 0 {
		return usageError("plan %q selects no services, so there is nothing to run; check its select block and the plan's includes (`rollout plan show %s` lists what it selects)", plan.Name, opts.File)
	}
	if opts.Flags.DryRun {
		return dryRun(opts, plan)
	}
	return executePlan(opts, plan)
}

// executePlan runs a compiled plan with the run's safety: the lock, the
// journal, events, signals, the live view and the exit status. `rollback`
// runs its generated plan through it too.
func executePlan(opts *RunOptions, plan *planner.Plan) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The backend lives on its own context: the first interrupt cancels
	// ctx (start nothing new), and the services in flight still need
	// systemd to finish or roll back.
	sdCtx, sdCancel := context.WithCancel(context.Background())
	defer sdCancel()
	// The local manager is needed only by services without hosts: a
	// controller that restarts only remote hosts may have none.
	var sd steps.Backend
	if hasLocal(plan) {
		var err error
		sd, err = opts.Systemd(sdCtx, opts.User)
		if err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("cannot reach the systemd manager: %w", err)}
		}
		defer sd.Close()
		phase.Mark("local manager connected")
	}
	deps := steps.Deps{Systemd: sd}
	var lockHosts func(context.Context, executor.LockHolder) (func(), error)
	var hostSet *steps.HostSet
	if len(plan.Hosts) > 0 {
		hosts, err := opts.Hosts(sdCtx)
		if err != nil {
			return usageError("%v", err)
		}
		defer hosts.Close()
		hosts.StartWarming(plan.Hosts)
		hostSet = hosts
		deps.Hosts = hosts.Get
		lockHosts = func(ctx context.Context, holder executor.LockHolder) (func(), error) {
			return hosts.Lock(ctx, plan.Hosts, holder, opts.LockWait, func(host string, err error) {
				fmt.Fprintf(opts.IO.ErrOut, "rollout: %v: its instances will fail\n", err)
			})
		}
	}

	eventsPath := opts.Events
	if eventsPath == "" {
		eventsPath = plan.EventsLog
	}
	if eventsPath == "" {
		eventsPath = executor.DefaultEventLogPath()
	}
	sink, err := executor.OpenEventLog(eventsPath)
	if err != nil {
		return usageError("cannot open the events log: %v; pass `--events FILE` to write it elsewhere", err)
	}
	defer sink.Close()

	state := executor.DefaultStatePaths(opts.User)
	lockPath, journals := opts.LockPath, state.Journals
	if lockPath == "" {
		lockPath = state.Lock
	} else {
		journals = executor.JournalDir(lockPath)
	}
	if !hasLocal(plan) {
		// Every service runs on hosts, each locked while the run holds
		// it: the controller's manager is not touched, so its lock is
		// not taken, and two runs from one controller (two CI jobs on one
		// runner) may restart different hosts at once. The journal stays
		// beside the lock, where recover looks.
		lockPath = ""
	}

	abort := make(chan struct{})
	stopSignals := watchSignals(opts, cancel, abort)
	defer stopSignals()

	notifier := startNotifier(plan, sink, notify.Options{})

	out := runview.NewPrinter(opts.IO.Out, opts.IO.ErrOut, opts.JSON)
	observe := out.Observe
	var live *runview.Live
	if opts.IO.OutTTY && !opts.NoTTY && !opts.JSON {
		live = runview.NewLive(opts.IO.Out, plan, opts.IO.ColorOut(), time.Now)
		live.Start(100 * time.Millisecond)
		observe = live.Observe
	}
	runID := executor.NewRunID(time.Now())
	promoteDir := executor.PromoteDir(journals)
	if opts.IO.InTTY && opts.IO.In != nil && !opts.JSON && manualCanary(plan) {
		p := &promoter{in: bufio.NewReader(opts.IO.In), errW: opts.IO.ErrOut, dir: promoteDir, runID: runID, by: whoAmI()}
		observe = p.observe(observe)
	}
	res, runErr := executor.Run(ctx, plan, executor.Options{
		RunID:       runID,
		PromoteDir:  promoteDir,
		Build:       steps.NewBuilder(deps),
		BuildCheck:  steps.NewCheckBuilder(deps),
		Parallel:    plan.MaxParallel,
		OnFailure:   plan.OnFailure,
		MaxFailures: plan.MaxFailures,
		Force:       opts.Flags.Force,
		UserManager: opts.User,
		LockPath:    lockPath,
		JournalDir:  journals,
		LockHosts:   lockHosts,
		PlanFile:    absPath(opts.File),
		EventsLog:   absPath(eventsPath),
		Abort:       abort,
		Events:      notifier.sink(),
		Observe:     observe,
		Preflight:   preflightOptions(opts, sd, nil, hostSet),
		Warn:        func(s string) { fmt.Fprintf(opts.IO.ErrOut, "rollout: warning: %s\n", s) },
	})
	if live != nil {
		live.Close()
		if res.RunID != "" {
			fmt.Fprintln(opts.IO.Out)
			live.SummaryTable(opts.IO.Out, plan)
		}
	}
	if runErr != nil && res.RunID == "" {
		// Nothing ran: the lock is held or the run could not start.
		return usageError("%v", runErr)
	}
	phase.Mark("run returned")
	out.Summary(plan, res, eventsPath)
	notifier.finish(opts.IO.ErrOut)
	return silentExit(runExitCode(opts.IO.ErrOut, res, runErr))
}

// runExitCode is the exit code of a run that started, saying on errOut
// what went wrong outside the services. A run whose record is incomplete
// (events lost, a journal left) did not end well even when every service
// did: it never exits 0.
func runExitCode(errOut io.Writer, res executor.Result, runErr error) int {
	code := res.ExitCode()
	if runErr == nil {
		return code
	}
	fmt.Fprintf(errOut, "rollout: %v\n", runErr)
	if code == exitOK {
		fmt.Fprintln(errOut, "rollout: the services are as reported above, but the run's record is incomplete; exit 1.")
		code = exitFailed
	}
	return code
}

// manualCanary says whether a canary of plan waits for a person.
func manualCanary(plan *planner.Plan) bool {
	for _, c := range plan.Canaries {
		if !c.AutoPromote {
			return true
		}
	}
	return false
}

// preflightOptions are the checks made before anything changes: every
// step runs on this machine (sd answers for its units).
func preflightOptions(opts *RunOptions, sd steps.Backend, sdErr error, hosts *steps.HostSet) *executor.PreflightOptions {
	m := steps.LocalMachine{Systemd: sd, Unreachable: sdErr}
	return &executor.PreflightOptions{
		Machine: func(svc *planner.Service) executor.Machine {
			if svc.Host != nil && hosts != nil {
				return steps.HostMachine{Host: hosts.SSH(svc.Host)}
			}
			return m
		},
		Force:       opts.Flags.Force,
		UserManager: opts.User,
		Warn:        func(s string) { fmt.Fprintf(opts.IO.ErrOut, "rollout: warning: %s\n", s) },
	}
}

// watchSignals turns the first interrupt into "start nothing new" and the
// second into "roll back what is in flight now".
func watchSignals(opts *RunOptions, cancel context.CancelFunc, abort chan struct{}) (stop func()) {
	sigs := opts.Signals
	stopNotify := func() {}
	if sigs == nil {
		sigs, stopNotify = interrupt.Notify()
	}
	stopStages := interrupt.Stages(sigs, func(s os.Signal) {
		fmt.Fprintf(opts.IO.ErrOut, "rollout: interrupted (%s): no new service will start; the services in flight finish or roll back. Interrupt again to roll them back now.\n", interrupt.Name(s))
		cancel()
	}, func(s os.Signal) {
		fmt.Fprintf(opts.IO.ErrOut, "rollout: interrupted again (%s): rolling back the services in flight now.\n", interrupt.Name(s))
		close(abort)
	})
	return func() {
		stopStages()
		stopNotify()
	}
}

// dryRun prints every step that would run, with its resolved arguments and
// what would undo it, and makes read-only checks of each unit. It changes
// nothing and writes no events.
func dryRun(opts *RunOptions, plan *planner.Plan) error {
	w := opts.IO.Out
	fmt.Fprintf(w, "Dry run of plan %q: %s, nothing will be changed.\n", plan.Name, plan.SizeText())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sd steps.Backend
	var sdErr error
	if hasLocal(plan) {
		sd, sdErr = opts.Systemd(ctx, opts.User)
		if sdErr != nil {
			// Preflight warns that units were not checked, and why.
			sd = nil
		} else {
			defer sd.Close()
		}
	}
	// The units of instances on hosts are checked on their hosts.
	var hosts *steps.HostSet
	if len(plan.Hosts) > 0 {
		var err error
		if hosts, err = opts.Hosts(ctx); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "rollout: units on hosts not checked: %v\n", err)
		} else {
			defer hosts.Close()
		}
	}
	// The same checks as a run's, before the listing: a problem is shown
	// at the end, where it is read.
	pfErr := executor.Preflight(ctx, plan, *preflightOptions(opts, sd, sdErr, hosts))
	problems := 0
	for i, svc := range plan.Services {
		fmt.Fprintf(w, "\n%d. %s (%s), wave %d\n", i+1, svc.Name, svc.Unit, svc.Wave)
		sd := sd
		if svc.Host != nil {
			sd = nil
			if hosts != nil {
				sd = hosts.SSH(svc.Host).Systemd()
			}
		}
		if sd != nil {
			note, ok := checkUnit(ctx, sd, svc.Unit)
			if !ok {
				problems++
			}
			fmt.Fprintf(w, "   unit: %s\n", note)
		}
		for _, st := range svc.Steps {
			fmt.Fprintf(w, "   - %s (%s)%s\n", st.Name, st.Type, formatArgs(st.Args))
			if st.Rollback != "" {
				fmt.Fprintf(w, "       undo: %s\n", st.Rollback)
			}
		}
	}
	for _, c := range plan.Canaries {
		fmt.Fprintf(w, "\nCanary of %s: %s first, observed %s every %s, then %s.\n", c.Service,
			strings.Join(c.Canaries, ", "), c.Observe, c.Interval, strings.Join(c.Rest, ", "))
		for _, ch := range c.Checks {
			fmt.Fprintf(w, "   - check: %s\n", ch.Describe())
		}
		if !c.AutoPromote {
			fmt.Fprintf(w, "   waits up to %s for `rollout promote RUN_ID`\n", c.PromoteTimeout)
		}
	}
	if pfErr != nil {
		fmt.Fprintf(w, "\nThe run would be refused (exit 2): the problems are listed on stderr.\n")
		return usageError("%v", pfErr)
	}
	if problems > 0 {
		fmt.Fprintf(w, "\n%s would fail: see the unit lines above.\n", plural(problems, "service"))
		return silentExit(exitFailed)
	}
	fmt.Fprintf(w, "\nPreflight: every program, directory, unit and filesystem the run needs is in order.\n")
	return nil
}

// checkUnit is the read-only check of --dry-run: is the unit loaded, is it
// running, can it reload.
func checkUnit(ctx context.Context, sd steps.Backend, unit string) (string, bool) {
	st, err := sd.Status(ctx, unit)
	if err != nil {
		return "cannot read: " + err.Error(), false
	}
	if st.LoadState != "loaded" {
		return fmt.Sprintf("NOT LOADED (LoadState=%s): the restart would fail", st.LoadState), false
	}
	reload := "cannot reload (restart instead)"
	if st.CanReload {
		reload = "can reload"
	}
	return fmt.Sprintf("loaded, %s/%s, %s", st.ActiveState, st.SubState, reload), true
}

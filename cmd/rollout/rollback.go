package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// RollbackOptions are the inputs of `rollout rollback`.
type RollbackOptions struct {
	IO     *IOStreams
	File   string
	Flags  planFlags // --var, --plan, --service, --parallel, --dry-run
	To     string
	Events string
	User   bool
	JSON   bool
	NoTTY  bool

	Systemd  func(ctx context.Context, user bool) (steps.Backend, error)
	Hosts    func(ctx context.Context) (*steps.HostSet, error)
	Signals  <-chan os.Signal
	LockPath string // tests
}

// NewCmdRollback builds `rollback`.
func NewCmdRollback(io *IOStreams, runF func(*RollbackOptions) error) *cobra.Command {
	opts := &RollbackOptions{IO: io, Systemd: connectSystemd, Hosts: openHosts}
	cmd := &cobra.Command{
		Use:   "rollback FILE [--service NAME]... [--host NAME]... [--to RELEASE] [--dry-run] [--parallel N] [--var K=V]... [--events FILE] [--user] [--json]",
		Short: "Switch services back to their previous good release and restart them",
		Long: `Switch the selected services (default: every service of the plan whose
pipeline has a release step) back to the release before the current one that
is not marked bad, or to --to RELEASE (an id, or a unique prefix of one), and
restart them in dependency order with their own restart, health check and
stabilization steps. It is a run like any other: the same lock, journal,
events and live view; if a service does not come up healthy on the old
release, its rollback switches it back to the release it was on.

Once a service is healthy on the old release, the release it left is marked
bad (releases/ID.bad), so that the next rollback skips it; ` + "`rollout releases`" + `
lists them.

Exit status: 0 all switched back and healthy; 1 a service failed and was put
back on the release it was on; 2 bad usage, an invalid plan, no release to go
back to, or another run holds the lock; 3 a rollback failed and a person must
act; 130 interrupted.`,
		Example: `  # what would happen: the release each service goes back to, the steps
  rollout rollback plans/platform.hcl --service sso.api --dry-run
  rollout rollback plans/platform.hcl --service sso.api
  # a named release (see rollout releases)
  rollout rollback plans/platform.hcl --service sso.api --to 20261130T2241`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if err := opts.Flags.check(cmd.Flags()); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return rollbackRun(opts)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&opts.Flags.Vars, "var", nil, "set a plan variable, `K=V` (repeatable)")
	fs.StringVar(&opts.Flags.Plan, "plan", "", "the plan block to use when the file has several")
	fs.StringArrayVar(&opts.Flags.Services, "service", nil, "roll back only this service (repeatable; dependency order is kept)")
	fs.StringArrayVar(&opts.Flags.Hosts, "host", nil, "roll back only the instances on this host (repeatable)")
	fs.IntVar(&opts.Flags.Parallel, "parallel", 1, "how many services may restart at once (0 = unbounded); default: the plan's max_parallel, else 1")
	fs.StringVar(&opts.To, "to", "", "the `RELEASE` to switch to (an id or a unique prefix; default: the previous good one)")
	fs.BoolVar(&opts.Flags.DryRun, "dry-run", false, "print the release each service goes back to and the steps; change and write nothing")
	fs.StringVar(&opts.Events, "events", "", "append events to this JSONL `FILE` (default: the plan's events_log, else a per-user state file)")
	fs.BoolVar(&opts.User, "user", false, "talk to the user's systemd manager instead of the system one")
	fs.BoolVar(&opts.JSON, "json", false, "stream events as JSON lines on stdout")
	fs.BoolVar(&opts.NoTTY, "no-tty", false, "plain output even on a terminal")
	return cmd
}

func rollbackRun(opts *RollbackOptions) error {
	hosts := newLazyHosts(opts.Hosts)
	defer hosts.close()
	plan, targets, err := planRollback(opts.IO, opts.File, &opts.Flags, opts.To, hosts.get)
	if err != nil {
		return err
	}
	run := &RunOptions{
		IO: opts.IO, File: opts.File, Flags: opts.Flags, Events: opts.Events, User: opts.User,
		JSON: opts.JSON, NoTTY: opts.NoTTY, Systemd: opts.Systemd, Hosts: opts.Hosts, Signals: opts.Signals, LockPath: opts.LockPath,
	}
	w := opts.IO.ErrOut
	if opts.Flags.DryRun {
		w = opts.IO.Out
	}
	for _, t := range targets {
		fmt.Fprintf(w, "%s: %s/current: %s -> %s (%s will be marked bad)\n", t.Service, t.Base, t.From, t.To, t.From)
	}
	if opts.Flags.DryRun {
		fmt.Fprintln(w)
		return dryRun(run, plan)
	}
	return executePlan(run, plan)
}

// planRollback compiles the plan to find each selected service's release
// base, chooses the release it goes back to, and replaces its steps with
// the rollback pipeline. Every service's problem is reported at once.
//
// hostOf gives the host of an instance on one, where its releases are read.
func planRollback(io *IOStreams, file string, f *planFlags, to string, hostOf func(*planner.Host) (steps.Host, error)) (*planner.Plan, []steps.RollbackTarget, error) {
	// Compiled as for a deploy, so that release steps behind `if =
	// run.deploy` are there; the deploy path is left empty, as nothing is
	// deployed.
	rf := *f
	rf.Deploy, rf.DeployPath = true, ""
	c, err := loadForRun(io, file, &rf)
	if err != nil {
		return nil, nil, err
	}
	plan := c.Plan
	var problems, without, with []string
	for _, svc := range plan.Services {
		_, ok, err := steps.ReleaseBase(svc)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", svc.Name, err))
		case !ok:
			without = append(without, svc.Name)
		default:
			with = append(with, svc.Name)
		}
	}
	if len(f.Services) > 0 && len(without) > 0 {
		problems = append(problems, fmt.Sprintf("%s %s no release step in %s pipeline, so there is no release to go back to",
			strings.Join(without, ", "), pluralVerb(len(without), "has", "have"), pluralVerb(len(without), "its", "their")))
	}
	if len(problems) > 0 {
		return nil, nil, usageError("cannot roll back:\n  %s", strings.Join(problems, "\n  "))
	}
	if len(with) == 0 {
		return nil, nil, usageError("no selected service of %s deploys with a release step: nothing to roll back", file)
	}
	if len(without) > 0 {
		// The whole plan was selected: roll back the services that have
		// releases, keeping their dependency order among themselves.
		rf.Services = with
		if c, err = loadForRun(io, file, &rf); err != nil {
			return nil, nil, err
		}
		plan = c.Plan
	}
	var targets []steps.RollbackTarget
	for _, svc := range plan.Services {
		base, _, err := steps.ReleaseBase(svc)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", svc.Name, err))
			continue
		}
		var h steps.Host
		if svc.Host != nil {
			if h, err = hostOf(svc.Host); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", svc.Name, err))
				continue
			}
		}
		t, err := steps.ChooseRollbackOn(context.Background(), h, base, to)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", svc.Name, err))
			continue
		}
		t.Service = svc.Name
		targets = append(targets, t)
		if err := steps.RollbackPipeline(svc, t); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", svc.Name, err))
		}
	}
	if len(problems) > 0 {
		return nil, nil, usageError("cannot roll back:\n  %s", strings.Join(problems, "\n  "))
	}
	plan.Name = "rollback " + plan.Name
	return plan, targets, nil
}

func pluralVerb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// lazyHosts opens the plan's hosts at the first instance that needs one,
// so that a plan without hosts never starts ssh.
type lazyHosts struct {
	open func(context.Context) (*steps.HostSet, error)
	set  *steps.HostSet
	err  error
}

func newLazyHosts(open func(context.Context) (*steps.HostSet, error)) *lazyHosts {
	return &lazyHosts{open: open}
}

func (l *lazyHosts) get(h *planner.Host) (steps.Host, error) {
	if l.set == nil && l.err == nil {
		if l.open == nil {
			l.err = fmt.Errorf("hosts are not reachable here")
		} else {
			l.set, l.err = l.open(context.Background())
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	return l.set.Get(h)
}

func (l *lazyHosts) close() {
	if l.set != nil {
		l.set.Close()
	}
}

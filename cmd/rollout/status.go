package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/status"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// StatusOptions are the inputs of `rollout status`.
type StatusOptions struct {
	IO      *IOStreams
	File    string
	Flags   planFlags // Vars, Plan and Services only
	Events  string
	User    bool
	JSON    bool
	Timeout time.Duration

	// Systemd connects to the manager; tests replace it with a fake or a
	// private manager.
	Systemd func(ctx context.Context, user bool) (steps.Backend, error)
	// Hosts opens the plan's hosts (ssh); tests may replace it.
	Hosts func(ctx context.Context) (*steps.HostSet, error)
	// Now is time.Now unless a test sets it.
	Now func() time.Time
}

// NewCmdStatus builds `status`.
func NewCmdStatus(io *IOStreams, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{IO: io, Systemd: connectSystemd, Hosts: openHosts, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "status FILE [--service NAME]... [--host NAME]... [--json] [--user] [--events FILE] [--timeout D]",
		Short: "Show each service's unit state, release, health right now and last run",
		Long: `Show, for each service the plan selects: its unit's state and since when,
its main PID, the release it runs (services deployed with the release step;
"-" otherwise), its own health check run once now, and the last run that
touched it (from the events log). Health checks run in parallel, at most 8 at
once, all within --timeout. An instance on a host (SERVICE@HOST) is read on
that host over ssh: its unit from the host's manager, its release from the
host's files, systemd and exec health checks there.

Exit status: 0 every selected service is healthy; 1 one is not (so it can
gate a CI step); 2 bad usage, an invalid plan, or systemd cannot be reached.`,
		Example: `  rollout status plans/platform.hcl
  rollout status plans/platform.hcl --service sso.api --service sso.postgresql
  rollout status plans/demo.hcl --user --json | jq '.services[] | select(.health.ok | not)'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if err := opts.Flags.check(cmd.Flags()); err != nil {
				return err
			}
			if opts.Timeout <= 0 {
				return usageError("`--timeout` must be more than 0, not %s", opts.Timeout)
			}
			if runF != nil {
				return runF(opts)
			}
			return statusRun(opts)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&opts.Flags.Vars, "var", nil, "set a plan variable, `K=V` (repeatable)")
	fs.StringVar(&opts.Flags.Plan, "plan", "", "the plan block to use when the file has several")
	fs.StringArrayVar(&opts.Flags.Services, "service", nil, "only this service (repeatable)")
	fs.StringArrayVar(&opts.Flags.Hosts, "host", nil, "only the instances on this host (repeatable)")
	fs.StringVar(&opts.Events, "events", "", "the events log to read last runs from (default: the plan's events_log, else the per-user state file)")
	fs.BoolVar(&opts.User, "user", false, "talk to the user's systemd manager instead of the system one")
	fs.BoolVar(&opts.JSON, "json", false, "print JSON instead of a table")
	fs.DurationVar(&opts.Timeout, "timeout", status.DefaultTimeout, "the most the whole status may take; a check still running then is failing")
	return cmd
}

func statusRun(opts *StatusOptions) error {
	c, err := loadForRun(opts.IO, opts.File, &opts.Flags)
	if err != nil {
		return err
	}
	plan := c.Plan

	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	var sd steps.Backend
	if hasLocal(plan) {
		sd, err = opts.Systemd(ctx, opts.User)
		if err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("cannot reach the systemd manager: %w", err)}
		}
		defer sd.Close()
	}
	var hostsOf func(*planner.Host) (steps.Host, error)
	if len(plan.Hosts) > 0 {
		hosts, err := opts.Hosts(ctx)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		defer hosts.Close()
		// One connection per host, opened at once; an unreachable host
		// shows as an error on each of its instances.
		hosts.Warm(plan.Hosts)
		hostsOf = hosts.Get
	}

	eventsPath := opts.Events
	if eventsPath == "" {
		eventsPath = plan.EventsLog
	}
	if eventsPath == "" {
		eventsPath = executor.DefaultEventLogPath()
	}
	events, err := readEventsFile(eventsPath)
	if err != nil {
		// Status without last runs is still worth showing.
		fmt.Fprintf(opts.IO.ErrOut, "rollout: last runs not shown: %v\n", err)
	}

	rep := status.Collect(ctx, plan, opts.Now(), status.Options{
		Systemd: sd,
		Hosts:   hostsOf,
		Events:  events,
		Timeout: opts.Timeout,
	})
	render := status.RenderText
	if opts.JSON {
		render = status.RenderJSON
	}
	if err := render(opts.IO.Out, rep); err != nil {
		return err
	}
	if !rep.Healthy {
		return silentExit(exitFailed)
	}
	return nil
}

// readEventsFile reads an events log; a missing one is empty (nothing has
// run yet).
func readEventsFile(path string) ([]executor.Event, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	events, _, err := executor.ReadEvents(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return events, nil
}

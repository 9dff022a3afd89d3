package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/runview"
)

// EventsOptions are the inputs of `rollout events`.
type EventsOptions struct {
	IO      *IOStreams
	File    string
	Last    bool
	RunID   string
	Service string
	Host    string
	JSON    bool
}

// NewCmdEvents builds `events`.
func NewCmdEvents(io *IOStreams, runF func(*EventsOptions) error) *cobra.Command {
	opts := &EventsOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "events [--last | --run ID] [--service NAME] [--host NAME] [--json] [--events FILE]",
		Short: "Show the history of runs from the events log",
		Long: `Show the history of runs from the events log: one line per run (when, plan,
services restarted, failed, rolled back, skipped, how long), oldest first.
With --last or --run ID, the run's events in detail. With --service, only the
runs that touched that service, and only its events; a service's name covers
its instances (--service api shows api@app1 and api@app2). With --host, only
the runs that touched that host, and only its instances' events.`,
		Example: `  rollout events
  rollout events --last
  rollout events --run 20261125T031502Z-4f2a1c --service sso.api
  rollout events --last --host app-2
  rollout events --events ./events.jsonl --json | jq .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Last && opts.RunID != "" {
				return usageError("`--last` and `--run` cannot be used together")
			}
			if runF != nil {
				return runF(opts)
			}
			return eventsRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.File, "events", "", "the events log to read (default: the per-user state file, as `run` writes it)")
	cmd.Flags().BoolVar(&opts.Last, "last", false, "show the last run in detail")
	cmd.Flags().StringVar(&opts.RunID, "run", "", "show the run with this `ID` in detail")
	cmd.Flags().StringVar(&opts.Service, "service", "", "only runs and events of this service (and its instances)")
	cmd.Flags().StringVar(&opts.Host, "host", "", "only runs and events of the instances on this host")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON: the run summaries, or the selected run's events as JSON lines")
	return cmd
}

func eventsRun(opts *EventsOptions) error {
	path := opts.File
	if path == "" {
		path = executor.DefaultEventLogPath()
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return usageError("no events log at %s: nothing has run yet, or pass `--events FILE`", path)
		}
		return usageError("%v", err)
	}
	defer f.Close()
	events, bad, err := executor.ReadEvents(f)
	if err != nil {
		return usageError("reading %s: %v", path, err)
	}
	if bad > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "rollout: %s: skipped %s that are not events\n", path, plural(bad, "line"))
	}
	runs := executor.Summarize(events)
	// selected says whether a service's event passes --service and --host.
	selected := func(e executor.Event) bool {
		return (opts.Service == "" || e.Service == opts.Service || serviceOfInstance(e.Service) == opts.Service) &&
			(opts.Host == "" || e.Host == opts.Host)
	}
	if opts.Service != "" || opts.Host != "" {
		var known, hosts []string
		for _, e := range events {
			if e.Service != "" && !slices.Contains(known, e.Service) {
				known = append(known, e.Service)
				if base := serviceOfInstance(e.Service); base != e.Service && !slices.Contains(known, base) {
					known = append(known, base)
				}
			}
			if e.Host != "" && !slices.Contains(hosts, e.Host) {
				hosts = append(hosts, e.Host)
			}
		}
		// A name no run ever touched is a typo far more often than a
		// service or host that never ran: say so, and fail.
		if opts.Service != "" && !slices.Contains(known, opts.Service) {
			return usageError("no run in %s touched a service %q.%s `rollout events` lists the runs", path, opts.Service, dsl.DidYouMean(opts.Service, known))
		}
		if opts.Host != "" && !slices.Contains(hosts, opts.Host) {
			return usageError("no run in %s touched a host %q.%s `rollout events` lists the runs", path, opts.Host, dsl.DidYouMean(opts.Host, hosts))
		}
		runs = slices.DeleteFunc(runs, func(r executor.RunSummary) bool {
			return !slices.ContainsFunc(r.Events, func(e executor.Event) bool { return e.Service != "" && selected(e) })
		})
	}
	if len(runs) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "rollout: no runs in %s%s\n", path, forService(opts.Service, opts.Host))
		return nil
	}
	if !opts.Last && opts.RunID == "" {
		if opts.JSON {
			enc := json.NewEncoder(opts.IO.Out)
			enc.SetIndent("", "  ")
			return enc.Encode(runs)
		}
		return writeRunList(opts.IO.Out, runs)
	}
	run := runs[len(runs)-1]
	if opts.RunID != "" {
		i := slices.IndexFunc(runs, func(r executor.RunSummary) bool { return r.RunID == opts.RunID })
		if i < 0 {
			return usageError("no run %q in %s%s; `rollout events` lists the runs", opts.RunID, path, forService(opts.Service, opts.Host))
		}
		run = runs[i]
	}
	evs := run.Events
	if opts.Service != "" || opts.Host != "" {
		evs = slices.DeleteFunc(slices.Clone(evs), func(e executor.Event) bool {
			return e.Service != "" && !selected(e)
		})
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	return writeRunDetail(opts.IO.Out, run, evs)
}

func forService(s, host string) string {
	var out string
	if s != "" {
		out = fmt.Sprintf(" for service %q", s)
	}
	if host != "" {
		out += fmt.Sprintf(" on host %q", host)
	}
	return out
}

// serviceOfInstance is the service an event's service name belongs to:
// "api" for the instances "api@app1", "api:2" and "api:2@app1".
func serviceOfInstance(name string) string {
	if i := strings.IndexAny(name, ":@"); i > 0 {
		return name[:i]
	}
	return name
}

func writeRunList(w io.Writer, runs []executor.RunSummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tRUN\tPLAN\tOUTCOME\tRESTARTED\tFAILED\tROLLED BACK\tSKIPPED\tDURATION")
	for _, r := range runs {
		outcome := r.Outcome
		if len(r.Irreversible) > 0 {
			outcome += ", not all undone"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n",
			r.Start.Local().Format("2006-01-02 15:04:05"), r.RunID, r.Plan, outcome,
			len(r.Restarted), len(r.Failed), len(r.RolledBack), len(r.Skipped),
			r.Duration().Round(time.Millisecond))
	}
	return tw.Flush()
}

func writeRunDetail(w io.Writer, r executor.RunSummary, evs []executor.Event) error {
	fmt.Fprintf(w, "run %s of plan %q: %s in %s, started %s\n", r.RunID, r.Plan, r.Outcome,
		r.Duration().Round(time.Millisecond), r.Start.Local().Format("2006-01-02 15:04:05"))
	for _, line := range []struct {
		label string
		names []string
	}{
		{"restarted", r.Restarted}, {"failed", r.Failed}, {"rolled back", r.RolledBack},
		{"ROLLBACK FAILED", r.RollbackFailed}, {"skipped", r.Skipped},
	} {
		if len(line.names) > 0 {
			fmt.Fprintf(w, "  %s: %s\n", line.label, strings.Join(line.names, ", "))
		}
	}
	for _, c := range r.Canaries {
		fmt.Fprintf(w, "  canary: %s\n", c)
	}
	if r.NotifyFailed > 0 {
		fmt.Fprintf(w, "  notifications not sent: %d (NOTIFY_FAILED below)\n", r.NotifyFailed)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Irreversible)) {
		fmt.Fprintf(w, "  NOT UNDONE (irreversible) in %s: %s\n", name, strings.Join(r.Irreversible[name], ", "))
	}
	fmt.Fprintln(w)
	for _, e := range evs {
		if s := runview.Line(e); s != "" {
			fmt.Fprintf(w, "%s  %s\n", e.Time.Local().Format("15:04:05.000"), s)
		}
	}
	return nil
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// eventPrinter prints a run's progress: one plain line per event, or the
// events themselves as JSON lines with --json.
type eventPrinter struct {
	mu     sync.Mutex
	w      io.Writer
	errW   io.Writer
	json   bool
	starts map[string]time.Time
}

func newEventPrinter(opts *RunOptions) *eventPrinter {
	return &eventPrinter{w: opts.IO.Out, errW: opts.IO.ErrOut, json: opts.JSON, starts: map[string]time.Time{}}
}

func (p *eventPrinter) observe(e executor.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		b, err := json.Marshal(e)
		if err == nil {
			p.w.Write(append(b, '\n'))
		}
		return
	}
	if line := plainLine(e); line != "" {
		fmt.Fprintf(p.w, "%s  %s\n", e.Time.Local().Format("15:04:05"), line)
	}
}

// plainLine says what an event means in a few words.
func plainLine(e executor.Event) string {
	took := ""
	if e.DurationMS > 0 {
		took = " (" + (time.Duration(e.DurationMS) * time.Millisecond).String() + ")"
	}
	step := e.Step
	if e.Phase != "" {
		step = e.Phase + " " + step
	}
	switch e.Event {
	case executor.RunStart:
		return fmt.Sprintf("run %s of plan %q started: %s", e.RunID, e.Plan, e.Message)
	case executor.RunSuccess:
		return fmt.Sprintf("run %s succeeded%s", e.RunID, took)
	case executor.RunFailed:
		return fmt.Sprintf("run %s FAILED%s: %s", e.RunID, took, e.Error)
	case executor.ServiceRestartStart:
		return fmt.Sprintf("%s: started (%s)", e.Service, e.Unit)
	case executor.ServiceRestartSuccess:
		return fmt.Sprintf("%s: done%s", e.Service, took)
	case executor.ServiceRestartFailed:
		return fmt.Sprintf("%s: FAILED%s: %s", e.Service, took, firstNonEmpty(e.Error, e.Message))
	case executor.ServiceSkipped:
		return fmt.Sprintf("%s: skipped: %s", e.Service, firstNonEmpty(e.Message, e.Cause))
	case executor.StepStart:
		if e.Message != "" {
			return fmt.Sprintf("%s: %s: %s", e.Service, step, e.Message)
		}
		return ""
	case executor.StepSuccess:
		msg := ""
		if e.Message != "" && e.Phase == "" {
			msg = ": " + e.Message
		}
		return fmt.Sprintf("%s: %s ok%s%s", e.Service, step, took, msg)
	case executor.StepFailed:
		return fmt.Sprintf("%s: %s FAILED%s: %s", e.Service, step, took, e.Error)
	case executor.StepLog:
		return fmt.Sprintf("%s: %s: %s", e.Service, step, e.Message)
	case executor.StepAttempt:
		if e.Attempt > 1 {
			return fmt.Sprintf("%s: %s attempt %d", e.Service, step, e.Attempt)
		}
		return ""
	case executor.RollbackStart:
		return fmt.Sprintf("%s: rolling back", e.Service)
	case executor.RollbackSuccess:
		return fmt.Sprintf("%s: rolled back%s", e.Service, took)
	case executor.RollbackFailed:
		return fmt.Sprintf("%s: ROLLBACK FAILED%s: %s\n%s", e.Service, took, e.Error, indent(e.Message, "    "))
	}
	return ""
}

// summary prints the end-of-run report. A failed rollback is repeated on
// ErrOut, loudly, because a person must act.
func (p *eventPrinter) summary(plan *planner.Plan, res executor.Result, eventsPath string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.w
	if p.json {
		w = p.errW
	}
	fmt.Fprintf(w, "\nplan %q, run %s: %d succeeded, %d failed, %d rolled back, %d skipped in %s\n",
		plan.Name, res.RunID, len(res.Succeeded), len(res.Failed), len(res.RolledBack), len(res.Skipped),
		res.Duration.Round(time.Millisecond))
	if res.Interrupted {
		fmt.Fprintln(w, "The run was interrupted.")
	}
	if len(res.RollbackFailed) > 0 {
		fmt.Fprintf(p.errW, "\nROLLBACK FAILED for %s: these services may be down or half-restored and a person must act now.\n",
			strings.Join(res.RollbackFailed, ", "))
		fmt.Fprintf(p.errW, "The manual steps are in the ROLLBACK_FAILED events of %s (run %s).\n", eventsPath, res.RunID)
	}
	fmt.Fprintf(w, "Events: %s\n", eventsPath)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix)
}

// formatArgs renders a step's resolved arguments in HCL syntax, sorted by
// name, leaving out unset ones: ` from = "/tmp/x" to = "/srv/x"`.
func formatArgs(args map[string]cty.Value) string {
	names := make([]string, 0, len(args))
	for name, v := range args {
		if v.IsNull() {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, name := range names {
		fmt.Fprintf(&sb, " %s = %s", name, strings.TrimSpace(string(hclwrite.TokensForValue(args[name]).Bytes())))
	}
	return sb.String()
}

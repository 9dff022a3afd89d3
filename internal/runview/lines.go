// Package runview shows a run as it happens: one plain line per event, the
// events themselves as JSON lines (--json), or a live view on a terminal.
// It only reads executor events; the command decides which to use.
package runview

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// Printer prints a run's progress: one plain line per event, or the
// events themselves as JSON lines with --json.
type Printer struct {
	mu   sync.Mutex
	w    io.Writer
	errW io.Writer
	json bool
}

// NewPrinter prints to w, or JSON lines to w when json; the summary goes to
// errW under json, so that w holds nothing but events.
func NewPrinter(w, errW io.Writer, json bool) *Printer {
	return &Printer{w: w, errW: errW, json: json}
}

// Observe prints e.
func (p *Printer) Observe(e executor.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	if p.json {
		b, merr := json.Marshal(e)
		if merr != nil {
			return
		}
		_, err = p.w.Write(append(b, '\n'))
	} else if line := Line(e); line != "" {
		_, err = fmt.Fprintf(p.w, "%s  %s\n", e.Time.Local().Format("15:04:05"), line)
	}
	if err != nil {
		// A reader that went away (`rollout run --json | head -1`: EPIPE)
		// or a terminal that hung up (EIO) is no reason to stop a run: the
		// run goes on, the events log keeps everything, printing stops.
		p.w = io.Discard
	}
}

// Line says what an event means in a few words; "" for an event not
// worth a line of its own.
func Line(e executor.Event) string {
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
	case executor.StepPhase:
		return fmt.Sprintf("%s: %s › %s", e.Service, step, e.Message)
	case executor.StepAttempt:
		if e.Attempt > 1 {
			return fmt.Sprintf("%s: %s attempt %d", e.Service, step, e.Attempt)
		}
		return ""
	case executor.RollbackStart:
		return fmt.Sprintf("%s: rolling back", e.Service)
	case executor.RollbackSuccess:
		return fmt.Sprintf("%s: rolled back%s%s", e.Service, took, NotUndone(e.Irreversible))
	case executor.RollbackFailed:
		return fmt.Sprintf("%s: ROLLBACK FAILED%s: %s\n%s", e.Service, took, e.Error, indent(e.Message, "    "))
	case executor.NotifyFailed:
		return fmt.Sprintf("%s: %s", e.Message, e.Error)
	case executor.CanaryStart:
		return fmt.Sprintf("%s: canary: %s", e.Service, e.Message)
	case executor.CanaryWaiting:
		return fmt.Sprintf("%s: canary: %s", e.Service, e.Message)
	case executor.CanaryPromoted:
		return fmt.Sprintf("%s: canary PROMOTED%s: %s", e.Service, took, e.Message)
	case executor.CanaryFailed:
		return fmt.Sprintf("%s: canary FAILED: %s; %s", e.Service, e.Error, e.Message)
	}
	return ""
}

// Summary prints the end-of-run report. A failed rollback is repeated on
// ErrOut, loudly, because a person must act.
func (p *Printer) Summary(plan *planner.Plan, res executor.Result, eventsPath string) {
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
	if len(res.Irreversible) > 0 {
		fmt.Fprintf(p.errW, "\nNOT UNDONE by the rollback (irreversible steps, no rollback): what they changed stays changed, e.g. a migration stays applied:\n")
		for _, name := range slices.Sorted(maps.Keys(res.Irreversible)) {
			fmt.Fprintf(p.errW, "  %s: %s\n", name, strings.Join(res.Irreversible[name], ", "))
		}
	}
	if len(res.RollbackFailed) > 0 {
		fmt.Fprintf(p.errW, "\nROLLBACK FAILED for %s: these services may be down or half-restored and a person must act now.\n",
			strings.Join(res.RollbackFailed, ", "))
		fmt.Fprintf(p.errW, "The manual steps are in the ROLLBACK_FAILED events of %s (run %s).\n", eventsPath, res.RunID)
	}
	fmt.Fprintf(w, "Events: %s\n", eventsPath)
}

// NotUndone is what a line about a rollback adds when the rollback left
// irreversible steps' changes in place; "" when it left none.
func NotUndone(steps []string) string {
	if len(steps) == 0 {
		return ""
	}
	return fmt.Sprintf(", but NOT UNDONE (irreversible, no rollback): %s: their changes stay", strings.Join(steps, ", "))
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

package runview

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// Live draws a run on a terminal: finished services scroll by above a
// live area that holds the counts and one row per service in flight (its
// step, how long it has been at it, the attempt). It redraws on a ticker,
// never per event, so a burst of events costs one frame.
type Live struct {
	mu     sync.Mutex
	w      io.Writer
	color  bool
	now    func() time.Time
	total  int
	order  map[string]int // plan position, to sort rows
	flight map[string]*flightRow
	// canaries are the canary phases being observed or awaiting a
	// person, by service: a row each.
	canaries map[string]*flightRow
	// succeeded are the services counted done, so that a canary failed
	// after its restart is counted once, as failed.
	succeeded map[string]bool
	done      map[string]time.Duration // finished services and how long each took
	status    map[string]string        // "done", "failed", "rolled back", "ROLLBACK FAILED", "skipped"
	counts    struct{ done, failed, skipped int }
	drawn     int    // lines of the live area on screen
	last      string // the frame on screen, to skip redrawing an unchanged one
	// cols and rows are the terminal's size, read once: rows are cut to
	// the width so that none wraps (the cursor-up count would then be
	// wrong), and the rows in flight are capped to the height, since the
	// cursor cannot move above the top of the screen.
	cols, rows int
	stop       chan struct{}
	wg         sync.WaitGroup
}

type flightRow struct {
	start     time.Time
	step      string
	stepStart time.Time
	attempt   int
	rollback  bool
	// phase is the phase of a long step (Env.Phase): "switch blue → green".
	phase string
}

func NewLive(w io.Writer, plan *planner.Plan, color bool, now func() time.Time) *Live {
	v := &Live{
		w: w, color: color, now: now, total: len(plan.Services),
		order:     map[string]int{},
		flight:    map[string]*flightRow{},
		canaries:  map[string]*flightRow{},
		succeeded: map[string]bool{},
		done:      map[string]time.Duration{},
		status:    map[string]string{},
		stop:      make(chan struct{}),
	}
	v.cols, v.rows = terminalSize(w)
	for i, s := range plan.Services {
		v.order[s.Name] = i
	}
	return v
}

// Start redraws every interval until Close.
func (v *Live) Start(interval time.Duration) {
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				v.mu.Lock()
				v.redraw()
				v.mu.Unlock()
			case <-v.stop:
				return
			}
		}
	}()
}

// Close stops the redraws and removes the live area from the screen.
func (v *Live) Close() {
	close(v.stop)
	v.wg.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clear()
}

// Observe updates the state; lines that must stay (a service finished,
// failed, rolled back) are printed above the live area at once.
func (v *Live) Observe(e executor.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	row := v.flight[e.Service]
	switch e.Event {
	case executor.ServiceRestartStart:
		v.flight[e.Service] = &flightRow{start: e.Time, stepStart: e.Time}
	case executor.StepStart:
		if row != nil {
			row.step, row.stepStart, row.attempt, row.rollback, row.phase = e.Step, e.Time, 0, e.Phase != "", ""
		}
	case executor.StepPhase:
		if row != nil {
			row.phase = e.Message
		}
	case executor.StepAttempt:
		if row != nil {
			row.attempt = e.Attempt
		}
	case executor.RollbackStart:
		if row != nil {
			row.rollback = true
		}
		v.printAbove(v.paint("33", "↺ "+e.Service+" rolling back: "+e.Error))
	case executor.ServiceRestartSuccess:
		v.finish(e, "done")
		v.counts.done++
		v.succeeded[e.Service] = true
		v.printAbove(v.paint("32", fmt.Sprintf("✓ %s %s", e.Service, ms(e.DurationMS))))
	case executor.CanaryStart:
		v.canaries[e.Service] = &flightRow{step: "canary: observing", start: e.Time, stepStart: e.Time}
		v.printAbove(v.paint("36", fmt.Sprintf("◎ %s canary: %s", e.Service, e.Message)))
	case executor.CanaryWaiting:
		if r := v.canaries[e.Service]; r != nil {
			r.step, r.stepStart = "canary: awaiting promotion", e.Time
		}
		v.printAbove(v.paint("1;36", fmt.Sprintf("? %s canary: %s", e.Service, e.Message)))
	case executor.CanaryPromoted:
		delete(v.canaries, e.Service)
		v.printAbove(v.paint("32", fmt.Sprintf("✓ %s canary promoted: %s", e.Service, e.Message)))
	case executor.CanaryFailed:
		delete(v.canaries, e.Service)
		v.printAbove(v.paint("31", fmt.Sprintf("✗ %s canary FAILED: %s; %s", e.Service, e.Error, e.Message)))
	case executor.ServiceRestartFailed:
		st := "failed"
		if v.status[e.Service] != "" {
			st = v.status[e.Service]
		}
		if v.succeeded[e.Service] {
			// A canary that restarted well, rolled back with its canary.
			delete(v.succeeded, e.Service)
			v.counts.done--
		}
		v.finish(e, st)
		v.counts.failed++
		v.printAbove(v.paint("31", fmt.Sprintf("✗ %s %s: %s", e.Service, ms(e.DurationMS), firstNonEmpty(e.Error, e.Message))))
	case executor.RollbackSuccess:
		v.status[e.Service] = "rolled back"
		if len(e.Irreversible) > 0 {
			v.status[e.Service] = "rolled back, NOT UNDONE: " + strings.Join(e.Irreversible, ", ")
		}
		v.printAbove(v.paint("33", fmt.Sprintf("↺ %s rolled back %s%s", e.Service, ms(e.DurationMS), NotUndone(e.Irreversible))))
	case executor.RollbackFailed:
		v.status[e.Service] = "ROLLBACK FAILED"
		v.printAbove(v.paint("1;31", fmt.Sprintf("!! %s ROLLBACK FAILED: %s", e.Service, e.Error)) + "\n" + indent(e.Message, "   "))
	case executor.ServiceSkipped:
		v.status[e.Service] = "skipped"
		v.counts.skipped++
		v.printAbove(v.paint("2", fmt.Sprintf("- %s skipped: %s", e.Service, firstNonEmpty(e.Message, e.Cause))))
	}
}

func (v *Live) finish(e executor.Event, status string) {
	delete(v.flight, e.Service)
	v.done[e.Service] = time.Duration(e.DurationMS) * time.Millisecond
	v.status[e.Service] = status
}

func ms(d int64) string {
	return (time.Duration(d) * time.Millisecond).Round(10 * time.Millisecond).String()
}

func (v *Live) paint(code, s string) string {
	if !v.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// printAbove clears the live area, prints s, and redraws the area below
// it, in one write so the terminal never shows the area half drawn.
func (v *Live) printAbove(s string) {
	var b strings.Builder
	v.erase(&b)
	b.WriteString(s)
	b.WriteByte('\n')
	v.draw(&b)
	io.WriteString(v.w, b.String())
}

// clear removes the live area from the screen.
func (v *Live) clear() {
	var b strings.Builder
	v.erase(&b)
	if b.Len() > 0 {
		io.WriteString(v.w, b.String())
	}
}

// redraw replaces the live area with a new frame, unless it is unchanged:
// an idle ticker writes nothing.
func (v *Live) redraw() {
	frame := v.frame(v.now())
	if frame == v.last && v.drawn > 0 {
		return
	}
	var b strings.Builder
	v.erase(&b)
	v.draw(&b)
	io.WriteString(v.w, b.String())
}

// erase appends the escapes that move up over the live area and clear it.
func (v *Live) erase(b *strings.Builder) {
	if v.drawn > 0 {
		fmt.Fprintf(b, "\x1b[%dA\x1b[J", v.drawn)
		v.drawn = 0
		v.last = ""
	}
}

// draw appends the current frame and remembers its height.
func (v *Live) draw(b *strings.Builder) {
	frame := v.frame(v.now())
	b.WriteString(frame)
	v.drawn = strings.Count(frame, "\n")
	v.last = frame
}

// frame is the live area: a counts line, then one row per service in flight.
func (v *Live) frame(now time.Time) string {
	var sb strings.Builder
	remaining := v.total - v.counts.done - v.counts.failed - v.counts.skipped - len(v.flight)
	fmt.Fprintf(&sb, "%d done, %d failed, %d skipped, %d in flight, %d remaining\n",
		v.counts.done, v.counts.failed, v.counts.skipped, len(v.flight), remaining)
	names := make([]string, 0, len(v.flight))
	for n := range v.flight {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return v.order[names[i]] < v.order[names[j]] })
	// Keep the area below the screen's height: the counts line, the rows,
	// a "more" line and the cursor's own line.
	more := 0
	if limit := max(v.rows-3, 1); len(names) > limit {
		more = len(names) - limit
		names = names[:limit]
	}
	var cn []string
	for n := range v.canaries {
		cn = append(cn, n)
	}
	sort.Strings(cn)
	for _, n := range cn {
		r := v.canaries[n]
		row := fmt.Sprintf("  %-28s %-24s %6s", n, r.step, now.Sub(r.stepStart).Round(100*time.Millisecond))
		sb.WriteString(fitWidth(row, v.cols))
		sb.WriteByte('\n')
	}
	for _, n := range names {
		r := v.flight[n]
		step := r.step
		if r.rollback {
			step = "rollback " + step
		}
		if r.phase != "" {
			step += " › " + r.phase
		}
		attempt := ""
		if r.attempt > 1 {
			attempt = fmt.Sprintf(" attempt %d", r.attempt)
		}
		row := fmt.Sprintf("  %-28s %-24s %6s%s", n, step, now.Sub(r.stepStart).Round(100*time.Millisecond), attempt)
		sb.WriteString(fitWidth(row, v.cols))
		sb.WriteByte('\n')
	}
	if more > 0 {
		fmt.Fprintf(&sb, "  … and %d more in flight\n", more)
	}
	return sb.String()
}

// fitWidth cuts s to fewer than cols runes, so that a row never wraps.
func fitWidth(s string, cols int) string {
	if cols <= 1 {
		return s
	}
	r := []rune(s)
	if len(r) < cols {
		return s
	}
	return string(r[:cols-2]) + "…"
}

// SummaryTable is printed at the end of a run: each service, its outcome and
// how long it took, in plan order.
func (v *Live) SummaryTable(w io.Writer, plan *planner.Plan) {
	v.mu.Lock()
	defer v.mu.Unlock()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tRESULT\tDURATION")
	for _, s := range plan.Services {
		st := v.status[s.Name]
		if st == "" {
			st = "not started"
		}
		d := ""
		if dur, ok := v.done[s.Name]; ok {
			d = dur.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, st, d)
	}
	tw.Flush()
}

// terminalSize returns w's columns and rows when w is a terminal, else (or
// when the size is unknown) 80×24, the size every terminal can show.
func terminalSize(w io.Writer) (cols, rows int) {
	cols, rows = 80, 24
	f, ok := w.(*os.File)
	if !ok {
		return cols, rows
	}
	var ws struct{ Row, Col, X, Y uint16 }
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws)))
	if errno != 0 || ws.Col == 0 || ws.Row == 0 {
		return cols, rows
	}
	return int(ws.Col), int(ws.Row)
}

package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// RenderText writes the report as a table, one line per service, then a
// line for each problem (the health check's error, an unreadable unit),
// then how many services are healthy. Times are shown relative to the
// report's time, so the same state always prints the same bytes.
func RenderText(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tUNIT\tSTATE\tSINCE\tPID\tRELEASE\tHEALTH\tLAST RUN")
	for _, s := range r.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			s.Name, s.Unit, stateText(s), ago(r.Time, s.Since), pidText(s.MainPID),
			orDash(s.Release), healthText(s.Health), lastRunText(r.Time, s.LastRun))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	healthy := 0
	for _, s := range r.Services {
		switch {
		case s.Error != "":
			fmt.Fprintf(&b, "%s: unit %s: %s\n", s.Name, s.Unit, s.Error)
		case s.LoadState != "loaded":
			fmt.Fprintf(&b, "%s: unit %s is not loaded (%s): is the unit file installed, and daemon-reloaded?\n", s.Name, s.Unit, s.LoadState)
		case s.ActiveState != "active":
			fmt.Fprintf(&b, "%s: unit %s is %s (%s)\n", s.Name, s.Unit, s.ActiveState, s.SubState)
		}
		if s.Healthy {
			healthy++
		}
		if s.Health.OK {
			continue
		}
		check := s.Health.Kind
		if s.Health.Target != "" {
			check += " " + s.Health.Target
		}
		fmt.Fprintf(&b, "%s: health (%s): %s\n", s.Name, strings.TrimSpace(check), s.Health.Error)
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%d of %d services healthy.\n", healthy, len(r.Services))
	_, err := io.WriteString(w, "\n"+b.String())
	return err
}

// RenderJSON writes the report as indented JSON with a trailing newline.
func RenderJSON(w io.Writer, r Report) error {
	if r.Services == nil {
		r.Services = []Service{}
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

func stateText(s Service) string {
	switch {
	case s.LoadState == "" && s.Error != "":
		return "unknown"
	case s.LoadState != "" && s.LoadState != "loaded":
		return s.LoadState
	}
	return s.ActiveState + "/" + s.SubState
}

func healthText(h Health) string {
	if h.OK {
		return "ok"
	}
	return "FAILING"
}

// The HEALTH column is the check's own answer; a service is healthy when
// its unit is also loaded and active (the last line counts those).

func lastRunText(now time.Time, r *RunRef) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s %s", r.RunID, r.Result, ago(now, r.Time))
}

func pidText(pid uint32) string {
	if pid == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(pid), 10)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago says how long before now t was, to the second under an hour and
// to the minute under two days: "42s ago", "5m10s ago", "3h05m ago", "4d ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds ago", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// EventsPath is where the demo's events go by default: beside the
// per-user events log but in a file of its own, so that demo runs never
// mix with the history of real ones (as root the real log is
// /var/log/rollout/events.jsonl).
func EventsPath(getenv func(string) string) string {
	if dir := getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "rollout", "demo-events.jsonl")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "rollout", "demo-events.jsonl")
	}
	return filepath.Join(os.TempDir(), "rollout-demo-events-"+strconv.Itoa(os.Getuid())+".jsonl")
}

// Report prints what each service runs now, and what the run did to it
// according to the events log.
func (p *Platform) Report(w io.Writer, eventsPath string) {
	outcome := Outcome(eventsPath)
	fmt.Fprintln(w, "\nWhat the demo platform runs now:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERVICE\tVERSION\tHEALTH\tIN THE RUN")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range p.Services {
		version, health := Probe(ctx, s)
		what := outcome[s.Name]
		if what == "" {
			what = "not started"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Name, version, health, what)
	}
	tw.Flush()
	fmt.Fprintf(w, "Events log (kept): %s\n", eventsPath)
}

// CleanupAndSay removes the demo platform and says how that went: what
// was removed on w, what failed on errW.
func (p *Platform) CleanupAndSay(w, errW io.Writer) {
	done, problems := p.Cleanup()
	if done != "" {
		fmt.Fprintf(w, "Cleaned up: %s.\n", done)
	}
	for _, pr := range problems {
		fmt.Fprintf(errW, "rollout demo: cleanup: %s\n", pr)
	}
}

// PrintKeep says how to reach the demo that --keep left running, and how
// to remove it.
func (p *Platform) PrintKeep(w io.Writer) {
	if p.Dir == "" {
		return
	}
	fmt.Fprintf(w, "\nThe demo is still running (--keep): %s in %s.\n", plural(len(p.Units), "unit"), p.Dir)
	env := ""
	if m := p.Manager.Private; m != nil {
		env = "XDG_RUNTIME_DIR=" + m.RuntimeDir + " DBUS_SESSION_BUS_ADDRESS=" + m.BusAddress + " "
	}
	fmt.Fprintf(w, "Restart a service yourself:\n  %srollout run %s --user --var dir=%s --var port_base=%d --service sso.api\n",
		env, p.PlanPath(), p.Dir, p.PortBase)
	fmt.Fprintln(w, "Clean up:")
	if m := p.Manager.Private; m != nil {
		// The manager stops its units on SIGTERM; its cgroups stay behind
		// (deepest first, rmdir removes them).
		fmt.Fprintf(w, "  kill %d; sleep 1; find /sys/fs/cgroup -depth -type d -path '*/%s*' -exec rmdir {} +; rm -rf %s\n", m.PID(), m.Cgroup(), p.Dir)
		return
	}
	var units []string
	for _, u := range p.Units {
		units = append(units, filepath.Base(u))
	}
	fmt.Fprintf(w, "  systemctl --user stop %s\n  rm -f %s/%s*\n  systemctl --user daemon-reload && rm -rf %s\n",
		strings.Join(units, " "), p.Manager.UnitDir, UnitPrefix, p.Dir)
}

// PrintNext says what to look at and try after the demo.
func (p *Platform) PrintNext(w io.Writer, eventsPath string) {
	fmt.Fprintln(w, "\nTry next:")
	fmt.Fprintf(w, "  rollout events --events %s --last   # this run, step by step\n", eventsPath)
	if p.Break == "" {
		fmt.Fprintln(w, "  rollout demo --break sso.api   # a failed restart, rolled back; its dependents skipped")
	} else {
		fmt.Fprintln(w, "  rollout demo --break seo.rag-retrieval   # break the ML chain instead")
	}
	fmt.Fprintln(w, "  rollout plan show plans/demo.hcl   # the plan the demo ran (plans/ in the rollout repository)")
}

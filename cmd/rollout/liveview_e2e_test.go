package main

// The run's terminal output, from the outside: the live view on a real
// terminal (tmux gives the binary a pty and shows what a person would
// see), plain lines without one, and JSON lines with --json.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/internal/testenv"
)

// slowPlatform is a chain of waves whose restarts each take over a second,
// so a terminal run lasts long enough to be seen mid-way.
func slowPlatform(t *testing.T) (*platform, string, []*testService) {
	t.Helper()
	p := newPlatform(t)
	opts := systemdtest.UnitOptions{Args: []string{"-ready-delay=1200ms"}}
	a := p.addService("tv.a", "v1", opts)
	b := p.addService("tv.b", "v1", opts)
	c := p.addService("tv.c", "v1", opts)
	p.startAll()
	plan := p.writePlan("plan.hcl", gatedPipeline+
		a.serviceHCL(`type = "svc"`)+
		b.serviceHCL(`type = "svc"`)+
		c.serviceHCL("type = \"svc\"\ndepends_on = [\"tv.a\", \"tv.b\"]")+
		`plan "tv" {}`)
	return p, plan, []*testService{a, b, c}
}

// tmuxSession runs a shell script in a detached tmux session on a private
// server socket, so that tests never touch a developer's own tmux.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T, script string) *tmuxSession {
	t.Helper()
	testenv.NeedProgram(t, "tmux", "the live view's terminal; scripts/test.sh installs it")
	dir := t.TempDir()
	path := filepath.Join(dir, "run.sh")
	writeFile(t, path, script)
	s := &tmuxSession{t: t, socket: filepath.Join(dir, "tmux.sock")}
	// A fixed, generous size: the whole run fits on the screen (nothing
	// scrolls away) and no row wraps.
	s.tmux("new-session", "-d", "-x", "160", "-y", "60", "bash "+path)
	t.Cleanup(func() { exec.Command("tmux", "-S", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.socket, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// capture returns the visible pane as text; escapes keeps its colours as
// SGR escapes. The pane's history is left out: tmux's scroll-on-clear moves
// a screen cleared from its top line into the history, so erased frames of
// the live view would show there although no person sees them.
func (s *tmuxSession) capture(escapes bool) string {
	args := []string{"capture-pane", "-p", "-t", "0"}
	if escapes {
		args = append(args, "-e")
	}
	return s.tmux(args...)
}

// runScript is a script that runs rollout with env and prints its exit
// status after it, then keeps the pane open for the last capture.
func runScript(p *platform, env []string, args ...string) string {
	var b strings.Builder
	b.WriteString("cd " + shellQuote(p.dir) + "\n")
	for _, kv := range append(p.m.Env(), env...) {
		b.WriteString("export " + shellQuote(kv) + "\n")
	}
	b.WriteString(shellQuote(buildRollout(p.t)))
	for _, a := range args {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString("\necho ROLLOUT-EXIT=$?\nsleep 600\n")
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var exitLine = regexp.MustCompile(`ROLLOUT-EXIT=(\d+)`)

// watch captures the pane every 50 ms until rollout exits, and returns
// every distinct screen seen on the way and the last one.
func (s *tmuxSession) watch(escapes bool) (seen []string, last string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		screen := s.capture(escapes)
		if len(seen) == 0 || seen[len(seen)-1] != screen {
			seen = append(seen, screen)
		}
		if exitLine.MatchString(screen) {
			return seen, screen
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("rollout did not exit within a minute; the pane:\n%s", s.capture(false))
	return nil, ""
}

func TestLiveViewOnATerminal(t *testing.T) {
	t.Parallel()
	p, plan, svcs := slowPlatform(t)
	s := startTmux(t, runScript(p, []string{"NO_COLOR="}, "run", plan, "--user", "--parallel", "2", "--events", p.events))
	seen, last := s.watch(true)

	if m := exitLine.FindStringSubmatch(last); m[1] != "0" {
		t.Fatalf("rollout exited %s; the pane:\n%s", m[1], last)
	}
	// Mid-run: the counts line and a row for each of the first wave's
	// services, in flight at the same moment, with its step and elapsed time.
	counts := regexp.MustCompile(`\d+ done, \d+ failed, \d+ skipped, 2 in flight, \d+ remaining`)
	row := func(name string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `\s+(gate|restart|verify)\s+\d+(\.\d+)?m?s`)
	}
	midRun := false
	for _, screen := range seen {
		plain := stripSGR(screen)
		if counts.MatchString(plain) && row("tv.a").MatchString(plain) && row("tv.b").MatchString(plain) {
			midRun = true
			break
		}
	}
	if !midRun {
		t.Errorf("no screen showed tv.a and tv.b in flight with the counts line; %d screens, the last:\n%s", len(seen), stripSGR(last))
	}

	plain := stripSGR(last)
	// The end: the live area is gone, the summary table lists every
	// service with its result and duration.
	if strings.Contains(plain, "remaining") {
		t.Errorf("the live area was not cleared before the summary:\n%s", plain)
	}
	if !strings.Contains(plain, "SERVICE") || !strings.Contains(plain, "DURATION") {
		t.Errorf("no summary table:\n%s", plain)
	}
	for _, svc := range svcs {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(svc.Name) + `\s+done\s+\d+(\.\d+)?m?s\s*$`)
		if !re.MatchString(plain) {
			t.Errorf("the summary has no row %q with a duration:\n%s", svc.Name, plain)
		}
	}
	// Colour on a terminal without NO_COLOR: the done lines are green.
	if !strings.Contains(last, "\x1b[32m") {
		t.Errorf("no colour on a terminal without NO_COLOR:\n%q", last)
	}
}

func TestLiveViewRespectsNoColor(t *testing.T) {
	t.Parallel()
	p, plan, _ := slowPlatform(t)
	s := startTmux(t, runScript(p, []string{"NO_COLOR=1"}, "run", plan, "--user", "--parallel", "0", "--events", p.events))
	seen, last := s.watch(true)
	if m := exitLine.FindStringSubmatch(last); m[1] != "0" {
		t.Fatalf("rollout exited %s; the pane:\n%s", m[1], last)
	}
	for _, screen := range seen {
		if sgr.MatchString(screen) {
			t.Fatalf("colour escapes with NO_COLOR=1:\n%q", screen)
		}
	}
	if !strings.Contains(last, "SERVICE") {
		t.Errorf("no summary table with NO_COLOR (the live view should still run):\n%s", last)
	}
}

// sgr matches a colour or attribute escape; tmux writes those it keeps
// with capture-pane -e.
var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func stripSGR(s string) string { return sgr.ReplaceAllString(s, "") }

func TestRunPlainOutputWithoutATerminal(t *testing.T) {
	t.Parallel()
	p, plan, svcs := slowPlatform(t)
	// No NO_COLOR here: a pipe alone must keep the output plain.
	cmd := p.command("run", plan, "--user", "--parallel", "2", "--events", p.events)
	cmd.Env = append(cmd.Env, "NO_COLOR=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rollout: %v\n%s", err, out)
	}
	text := string(out)
	if strings.ContainsRune(text, '\x1b') {
		t.Errorf("escape sequences in plain output:\n%q", text)
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	// Progress lines come first, each stamped; the summary follows a blank line.
	var progress []string
	for _, l := range lines {
		if l == "" {
			break
		}
		progress = append(progress, l)
	}
	stamp := regexp.MustCompile(`^\d\d:\d\d:\d\d  \S`)
	for _, l := range progress {
		if !stamp.MatchString(l) {
			t.Errorf("progress line without a time stamp: %q", l)
		}
	}
	// One line per service event, in the events log's order.
	var want []string
	for _, e := range p.readEvents() {
		switch e.Event {
		case executor.ServiceRestartStart:
			want = append(want, e.Service+": started")
		case executor.ServiceRestartSuccess:
			want = append(want, e.Service+": done")
		}
	}
	var got []string
	for _, l := range progress {
		for _, svc := range svcs {
			if strings.Contains(l, "  "+svc.Name+": started") {
				got = append(got, svc.Name+": started")
			} else if strings.Contains(l, "  "+svc.Name+": done") {
				got = append(got, svc.Name+": done")
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 2*len(svcs) {
		t.Errorf("service lines %q, want %q (one per event)", got, want)
	}
	if strings.Contains(text, "remaining") || strings.Contains(text, "DURATION") {
		t.Errorf("live-view output without a terminal:\n%s", text)
	}
}

func TestRunJSONStreamsTheEvents(t *testing.T) {
	t.Parallel()
	p, plan, _ := slowPlatform(t)
	r := p.rollout("run", plan, "--user", "--parallel", "0", "--json", "--events", p.events)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var streamed []string
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	for sc.Scan() {
		var e executor.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("stdout line is not an event: %q: %v", sc.Text(), err)
		}
		if e.Event != executor.StepLog && e.Event != executor.StepAttempt {
			streamed = append(streamed, e.Event+" "+e.Service+" "+e.Step)
		}
	}
	var logged []string
	for _, e := range p.readEvents() {
		logged = append(logged, e.Event+" "+e.Service+" "+e.Step)
	}
	if fmt.Sprint(streamed) != fmt.Sprint(logged) {
		t.Errorf("--json streamed\n%q\nthe events log holds\n%q", streamed, logged)
	}
}

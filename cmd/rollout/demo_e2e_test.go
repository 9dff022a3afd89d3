package main

// End-to-end tests of `rollout demo`: the real binary, real systemd (the
// demo starts its own private manager as root), and afterwards nothing of
// the demo left on the machine.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/demo"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/internal/usermanager"
)

// demoEnv is the environment of one demo under test: a temp dir of its own
// (TMPDIR, where the demo makes its directory) and an events log outside it.
type demoEnv struct {
	t      *testing.T
	tmp    string // the demo's TMPDIR: must be empty afterwards
	events string
	path   string // PATH for the demo; "" keeps ours
}

func newDemoEnv(t *testing.T) *demoEnv {
	t.Helper()
	if os.Geteuid() != 0 && usermanager.SessionBusAddress(os.Getenv) == "" {
		systemdtest.Require(t, errors.New("`rollout demo` needs root (to start a private manager) or a user manager"))
	}
	// A short TMPDIR: the private manager's sockets live under it and
	// must fit in sun_path.
	tmp, err := os.MkdirTemp("", "dmt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	return &demoEnv{t: t, tmp: tmp, events: filepath.Join(t.TempDir(), "demo-events.jsonl")}
}

func (e *demoEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(buildRollout(e.t), append([]string{"demo", "--events", e.events}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+e.tmp, "NO_COLOR=1")
	if e.path != "" {
		cmd.Env = append(cmd.Env, "PATH="+e.path)
	}
	return cmd
}

// pathWithout returns a PATH of one directory that holds a link to every
// program on the current PATH except the ones named: a machine on which
// they were never installed.
func pathWithout(t *testing.T, programs ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, en := range entries {
			if slices.Contains(programs, en.Name()) {
				continue
			}
			link := filepath.Join(dir, en.Name())
			if _, err := os.Lstat(link); err == nil {
				continue // an earlier PATH entry wins, as for the shell
			}
			if err := os.Symlink(filepath.Join(d, en.Name()), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range programs {
		if found, err := exec.LookPath(filepath.Join(dir, p)); err == nil {
			t.Fatalf("%s is still reachable as %s", p, found)
		}
	}
	return dir
}

func (e *demoEnv) run(args ...string) runResult {
	e.t.Helper()
	cmd := e.command(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	began := time.Now()
	err := cmd.Run()
	e.t.Logf("rollout demo %s: %s wall time", strings.Join(args, " "), time.Since(began).Round(time.Millisecond))
	return runResult{Stdout: out.String(), Stderr: errOut.String(), Code: exitCodeOf(e.t, err)}
}

func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running rollout: %v", err)
	}
	return 0
}

func (e *demoEnv) readEvents() []executor.Event {
	e.t.Helper()
	f, err := os.Open(e.events)
	if err != nil {
		e.t.Fatalf("events log: %v", err)
	}
	defer f.Close()
	evs, bad, err := executor.ReadEvents(f)
	if err != nil || bad > 0 {
		e.t.Fatalf("events log: %d bad lines, err %v", bad, err)
	}
	return evs
}

var (
	managerPIDLine = regexp.MustCompile(`private systemd user manager \(pid (\d+)\)`)
	demoDirLine    = regexp.MustCompile(`Demo directory: \S*/rollout-demo-(\d+) `)
)

// assertNothingLeft checks that the demo removed every unit, process, file
// and manager it created.
func (e *demoEnv) assertNothingLeft(output, stderr string) {
	e.t.Helper()
	defer func() {
		if e.t.Failed() {
			e.t.Logf("demo stderr:\n%s", stderr)
		}
	}()
	if entries, err := os.ReadDir(e.tmp); err != nil || len(entries) > 0 {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		e.t.Errorf("demo files left in %s: %v (err %v)", e.tmp, names, err)
	}
	if m := managerPIDLine.FindStringSubmatch(output); m != nil {
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
			e.t.Errorf("the private manager (pid %d) is still there (kill 0: %v)", pid, err)
		}
		// Named after the demo directory (see internal/demo), so that
		// demos running at the same time (other test binaries) do not count.
		if d := demoDirLine.FindStringSubmatch(output); d != nil {
			name := "rollout-sd-" + d[1] + "-*"
			left, _ := filepath.Glob("/sys/fs/cgroup/" + name)
			more, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
			if left = append(left, more...); len(left) > 0 {
				e.t.Errorf("the private manager's cgroups are left: %v", left)
			}
		} else {
			e.t.Errorf("no demo directory line in the output")
		}
	} else if unitDir, err := demo.UserUnitDir(os.Getenv); err == nil {
		if left, _ := filepath.Glob(filepath.Join(unitDir, demo.UnitPrefix+"*")); len(left) > 0 {
			e.t.Errorf("demo unit files left: %v", left)
		}
	}
	// Only this demo's: its services run from its directory (as `rollout
	// demo-service`) and its manager has the directory in its environment.
	// Other demos may be running at the same time.
	if procs := processesMentioning(e.tmp); len(procs) > 0 {
		e.t.Errorf("demo processes left: %v", procs)
	}
}

// processesMentioning scans /proc for processes whose command line or
// environment holds any of needles: the demo's services run a binary under
// the demo directory as `rollout demo-service`, and its manager has the
// demo directory in XDG_RUNTIME_DIR.
func processesMentioning(needles ...string) []string {
	var found []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		for _, n := range needles {
			if bytes.Contains(cmdline, []byte(n)) || bytes.Contains(environ, []byte(n)) {
				found = append(found, d.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
				break
			}
		}
	}
	return found
}

func serviceEvents(evs []executor.Event, service string) []string {
	var names []string
	for _, e := range evs {
		if e.Service == service && e.Step == "" {
			names = append(names, e.Event)
		}
	}
	return names
}

// TestDemoE2E runs the README's two demo commands and checks their
// outcome and that nothing is left behind. The subtests run one after the
// other: the leftover scan looks for any demo-service process.
func TestDemoE2E(t *testing.T) {
	// The README's first command on a fresh machine: no rsync installed.
	// The demo deploys with the release step, which copies in Go.
	t.Run("succeeds without rsync", func(t *testing.T) {
		e := newDemoEnv(t)
		e.path = pathWithout(t, "rsync")
		res := e.run("--no-tty")
		if res.Code != exitOK {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", res.Code, res.Stdout, res.Stderr)
		}
		evs := e.readEvents()
		if strings.Contains(res.Stdout+res.Stderr, "executable file not found") {
			t.Errorf("the demo missed a program:\n%s\n%s", res.Stdout, res.Stderr)
		}
		if got := eventNames(evs, nil); !slices.Contains(got, "RUN_SUCCESS") || slices.Contains(got, "ROLLBACK_START") {
			t.Errorf("events %v: want RUN_SUCCESS and no rollback", got)
		}
		restarted := 0
		for _, ev := range evs {
			if ev.Event == "SERVICE_RESTART_SUCCESS" {
				restarted++
			}
		}
		if restarted != 12 {
			t.Errorf("%d services restarted, want 12", restarted)
		}
		if n := strings.Count(res.Stdout, "restarted on v2"); n != 12 {
			t.Errorf("report shows %d services restarted on v2, want 12:\n%s", n, res.Stdout)
		}
		e.assertNothingLeft(res.Stdout, res.Stderr)
	})

	t.Run("break rolls back", func(t *testing.T) {
		e := newDemoEnv(t)
		res := e.run("--break", "sso.api", "--no-tty")
		if res.Code != exitFailed {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", res.Code, res.Stdout, res.Stderr)
		}
		evs := e.readEvents()
		if got := serviceEvents(evs, "sso.api"); !slices.Contains(got, "ROLLBACK_SUCCESS") || slices.Contains(got, "ROLLBACK_FAILED") {
			t.Errorf("sso.api events %v: want ROLLBACK_SUCCESS", got)
		}
		for _, dep := range []string{"merchant.api", "marketplace.api"} {
			if got := serviceEvents(evs, dep); !slices.Contains(got, "SERVICE_SKIPPED") {
				t.Errorf("%s events %v: want SERVICE_SKIPPED", dep, got)
			}
		}
		// on_failure "continue": the ML chain does not depend on sso.api.
		if got := serviceEvents(evs, "seo.classifier"); !slices.Contains(got, "SERVICE_RESTART_SUCCESS") {
			t.Errorf("seo.classifier events %v: want SERVICE_RESTART_SUCCESS", got)
		}
		if !regexp.MustCompile(`sso\.api +v1 +ok +failed, rolled back to v1`).MatchString(res.Stdout) {
			t.Errorf("report does not show sso.api healthy on v1 after its rollback:\n%s", res.Stdout)
		}
		e.assertNothingLeft(res.Stdout, res.Stderr)
	})

	t.Run("interrupted", func(t *testing.T) {
		e := newDemoEnv(t)
		cmd := e.command("--break", "sso.api", "--no-tty", "--parallel", "1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			out.WriteString(line + "\n")
			// Interrupt while sso.api's broken release fails its check:
			// the run must still roll it back, then the demo cleans up.
			if !signalled && strings.Contains(line, "sso.api: restart ok") {
				_ = cmd.Process.Signal(syscall.SIGINT)
				signalled = true
			}
		}
		_, _ = io.Copy(&out, stdout)
		code := exitCodeOf(t, cmd.Wait())
		if !signalled {
			t.Fatalf("never saw sso.api restart; output:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
		if code != exitInterrupted {
			t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitInterrupted, out.String(), errOut.String())
		}
		evs := e.readEvents()
		if got := serviceEvents(evs, "sso.api"); !slices.Contains(got, "ROLLBACK_SUCCESS") {
			t.Errorf("sso.api events %v: want ROLLBACK_SUCCESS after the interrupt", got)
		}
		if got := serviceEvents(evs, "seo.classifier"); slices.Contains(got, "SERVICE_RESTART_START") {
			t.Errorf("seo.classifier events %v: nothing new may start after the interrupt", got)
		}
		e.assertNothingLeft(out.String(), errOut.String())
	})
}

package main

// Reliability of `rollout run` against a real systemd --user manager:
// interrupts, crashes, hostile health endpoints and flapping services, two
// runs at once, hostile input. docs/reliability.md maps each case to its
// test.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/steps"
)

// slowPipeline restarts a service and then watches it for a long time, so
// that a signal or a kill lands while the service is in flight.
func slowPipeline(settle string) string {
	return fmt.Sprintf(`
pipeline "api" {
  step "backup_unit" "backup" {}
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    to   = service.working_dir
  }
  step "exec" "install_unit" {
    if      = run.deploy
    command = ["cp", "${service.working_dir}/unit.service", service.meta.unit_path]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = %q }
}
`, settle)
}

// started is a rollout process running in the background.
type started struct {
	cmd          *exec.Cmd
	stdout, errb syncBuffer
	done         chan struct{}
	code         int
}

func (p *platform) start(args ...string) *started {
	p.t.Helper()
	s := &started{cmd: p.command(args...), done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.errb
	if err := s.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			s.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				s.code = -int(ws.Signal())
			}
		}
		close(s.done)
	}()
	p.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// wait waits for the process to exit and returns its exit code (minus the
// signal number when a signal ended it).
func (s *started) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(limit):
		t.Fatalf("rollout still running after %s\nstdout:\n%s\nstderr:\n%s", limit, s.stdout.String(), s.errb.String())
		return 0
	}
}

func (s *started) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// syncBuffer is a bytes.Buffer that a test may read while the process
// writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (s *started) stderr() string { return s.errb.String() }

// signalAgain sends sig a second time once rollout has said that it handled
// the first: two signals sent back to back can merge into one in the
// kernel.
func (s *started) signalAgain(t *testing.T, sig os.Signal) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.stderr(), "rollout: interrupted (") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s.signal(t, sig)
}

// waitForEvent polls the events log until an event matches, and fails the
// test when the process ends first or the limit passes. Lines are parsed
// one by one, so a line being written is simply not matched yet.
func (p *platform) waitForEvent(s *started, limit time.Duration, match func(executor.Event) bool) executor.Event {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if data, err := os.ReadFile(p.events); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var e executor.Event
				if json.Unmarshal(sc.Bytes(), &e) == nil && match(e) {
					return e
				}
			}
		}
		select {
		case <-s.done:
			p.t.Fatalf("rollout exited (%d) before the awaited event\nstdout:\n%s\nstderr:\n%s", s.code, s.stdout.String(), s.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no matching event within %s\nstderr:\n%s", limit, s.errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stepEvent(name, service, step string) func(executor.Event) bool {
	return func(e executor.Event) bool {
		return e.Event == name && e.Service == service && e.Step == step && e.Phase == ""
	}
}

// assertValidJSONL checks that every line of the events log is a JSON
// object, as a crash at any point must leave it.
func assertValidJSONL(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("events line %d is not JSON (%v): %q", i+1, err, line)
		}
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() != 0o640 {
		t.Errorf("events log mode %v, want 0640", fi.Mode().Perm())
	}
}

// TestInterruptDuringRun: Ctrl-C (SIGINT), SIGTERM or SIGHUP while a service is in
// its stabilization window. Once: nothing new starts, the service in
// flight finishes. Twice: the service in flight is rolled back at once.
// Either way exit 130 and the log ends with RUN_FAILED.
func TestInterruptDuringRun(t *testing.T) {
	cases := []struct {
		name    string
		sig     os.Signal
		twice   bool
		settle  string
		outcome string // the in-flight service's last event
	}{
		{"SIGINT once lets the service finish", syscall.SIGINT, false, "2500ms", "SERVICE_RESTART_SUCCESS first"},
		{"SIGTERM once lets the service finish", syscall.SIGTERM, false, "2500ms", "SERVICE_RESTART_SUCCESS first"},
		// An ssh connection that drops sends SIGHUP: the same as SIGTERM.
		{"SIGHUP once lets the service finish", syscall.SIGHUP, false, "2500ms", "SERVICE_RESTART_SUCCESS first"},
		{"SIGINT twice rolls back at once", syscall.SIGINT, true, "20s", "SERVICE_RESTART_FAILED first"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t)
			first := p.addService("first", "v1", systemdtest.UnitOptions{})
			second := p.addService("second", "v1", systemdtest.UnitOptions{})
			p.startAll()
			plan := p.writePlan("plan.hcl", slowPipeline(tc.settle)+
				first.serviceHCL(`type = "api"`)+
				second.serviceHCL(`type = "api"
depends_on = ["first"]`))
			secondBefore := p.state(second)

			s := p.start("run", plan, "--user", "--events", p.events)
			p.waitForEvent(s, 30*time.Second, stepEvent(executor.StepStart, "first", "settle"))
			t0 := time.Now()
			s.signal(t, tc.sig)
			if tc.twice {
				s.signalAgain(t, tc.sig)
			}
			code := s.wait(t, 60*time.Second)
			t.Logf("rollout exited %d, %s after the signal", code, time.Since(t0).Round(time.Millisecond))
			if code != exitInterrupted {
				t.Fatalf("exit %d, want 130\nstdout:\n%s\nstderr:\n%s", code, s.stdout.String(), s.errb.String())
			}
			assertValidJSONL(t, p.events)
			evs := p.readEvents()
			names := eventNames(evs, func(e executor.Event) bool {
				return e.Phase == "" && e.Event != executor.StepStart && e.Event != executor.StepSuccess && e.Event != executor.StepFailed
			})
			if last := names[len(names)-1]; last != "RUN_FAILED" {
				t.Errorf("the events log ends with %q, want RUN_FAILED: %q", last, names)
			}
			if !slices.Contains(names, tc.outcome) {
				t.Errorf("events lack %q: %q", tc.outcome, names)
			}
			if tc.twice && !slices.Contains(names, "ROLLBACK_SUCCESS first") {
				t.Errorf("a second interrupt did not roll back the service in flight: %q", names)
			}
			if slices.Contains(names, "SERVICE_RESTART_START second") {
				t.Errorf("a service started after the interrupt: %q", names)
			}
			if p.state(second).InvocationID != secondBefore.InvocationID {
				t.Errorf("second was restarted after the interrupt")
			}
			if _, code := p.get(first, "/health"); code != 200 {
				t.Errorf("first is not healthy after the interrupted run (%d)", code)
			}
			if runs, _ := executor.UnfinishedRuns(p.journals()); len(runs) != 0 {
				t.Errorf("an interrupted run left its journal: %+v", runs[0])
			}
		})
	}
}

// TestClosedStdoutDoesNotKillTheRun: `rollout run --json | head -1` closes
// rollout's stdout after the first event. The run must not die of SIGPIPE
// mid-step: it goes on, restarts every service, writes the whole events
// log and exits 0; only the printing stops.
func TestClosedStdoutDoesNotKillTheRun(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	first := p.addService("first", "v1", systemdtest.UnitOptions{})
	second := p.addService("second", "v1", systemdtest.UnitOptions{})
	p.startAll()
	plan := p.writePlan("plan.hcl", slowPipeline("300ms")+
		first.serviceHCL(`type = "api"`)+
		second.serviceHCL(`type = "api"
depends_on = ["first"]`))
	before := p.state(second)

	cmd := p.command("run", plan, "--user", "--json", "--events", p.events)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	cmd.Stdout, cmd.Stderr = w, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || !strings.Contains(line, `"RUN_START"`) {
		t.Fatalf("first line %q (%v), want RUN_START", line, err)
	}
	r.Close() // head -1 exits: every later write to stdout is EPIPE
	err = cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("rollout died of %v after its stdout closed\nstderr:\n%s", ws.Signal(), errb.String())
		}
	}
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", code, errb.String())
	}
	assertValidJSONL(t, p.events)
	names := eventNames(p.readEvents(), func(e executor.Event) bool { return e.Step == "" })
	if want := "RUN_SUCCESS"; names[len(names)-1] != want {
		t.Errorf("the events log ends with %q, want %s: %q", names[len(names)-1], want, names)
	}
	if p.state(second).InvocationID == before.InvocationID {
		t.Errorf("second was not restarted: the run stopped when its stdout closed")
	}
}

// TestCrashThenRecover: SIGKILL of rollout after it restarted a service on
// a new release (new code, new unit file). The next run is refused;
// `rollout recover` puts the old code and unit file back and the service
// is healthy on v1.
func TestCrashThenRecover(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	originalUnit := readFile(t, api.UnitPath)
	v2 := api.Opts
	v2.Args = []string{"-ready-delay", "10ms"}
	p.release(api, "v2", map[string]string{"unit.service": systemdtest.HTTPServiceUnit(api.Name, p.bin, api.Port, api.Dir, v2)})
	plan := p.writePlan("plan.hcl", slowPipeline("20s")+api.serviceHCL(`type = "api"`))
	run := []string{"run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", p.dir + "/release"}

	s := p.start(run...)
	started := p.waitForEvent(s, 30*time.Second, stepEvent(executor.StepSuccess, "sso.api", "restart"))
	s.signal(t, syscall.SIGKILL)
	s.wait(t, 10*time.Second)
	// The restart job is done; the new process may not listen yet.
	p.waitHealthy(api)
	if v, _ := p.get(api, "/version"); v != "v2" {
		t.Fatalf("before recovery sso.api reports %q, want v2 (the kill came too early?)", v)
	}
	if readFile(t, api.UnitPath) == originalUnit {
		t.Fatalf("the release's unit file was not installed before the kill")
	}
	assertValidJSONL(t, p.events)

	// The dead run blocks the next one, naming it and what to do.
	r := p.rollout(run...)
	if r.Code != exitUsage || !strings.Contains(r.Stderr, started.RunID) || !strings.Contains(r.Stderr, "rollout recover") {
		t.Fatalf("a run after the crash: exit %d, want 2 naming run %s and `rollout recover`\n%s", r.Code, started.RunID, r.Stderr)
	}
	before := p.state(api)

	r = p.rollout("recover", "--user")
	if r.Code != 0 {
		t.Fatalf("recover: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("rollout recover said:\n%s", r.Stderr)
	if !strings.Contains(r.Stderr, "sso.api") || !strings.Contains(r.Stderr, ".backup") {
		t.Errorf("recover does not say what it will do:\n%s", r.Stderr)
	}
	if got := readFile(t, api.UnitPath); got != originalUnit {
		t.Errorf("unit file not restored:\n%s\nwant:\n%s", got, originalUnit)
	}
	if v, code := p.get(api, "/version"); v != "v1" || code != 200 {
		t.Errorf("after recover sso.api reports %q (%d), want v1", v, code)
	}
	if _, code := p.get(api, "/health"); code != 200 {
		t.Errorf("after recover sso.api health %d", code)
	}
	if after := p.state(api); after.ActiveState != "active" || after.InvocationID == before.InvocationID {
		t.Errorf("after recover: %s, InvocationID %s (before %s): want active and restarted", after.ActiveState, after.InvocationID, before.InvocationID)
	}
	assertValidJSONL(t, p.events)
	var recovered []string
	for _, e := range p.readEvents() {
		if e.RunID == started.RunID && e.Phase == "" && e.Event != executor.StepStart && e.Event != executor.StepSuccess {
			recovered = append(recovered, strings.Join(strings.Fields(e.Event+" "+e.Service+" "+e.Message), " "))
		}
	}
	// install_unit is an exec step without rollback_command: the recovered
	// rollback must say that it did not undo it (the unit file itself is
	// restored by backup_unit).
	if want := []string{"ROLLBACK_START sso.api undoing 4 steps",
		`ROLLBACK_SUCCESS sso.api NOT UNDONE: "install_unit" cannot be undone, so what it changed stays changed (a migration stays applied)`,
		"RUN_FAILED recovered"}; !slices.Equal(recovered[len(recovered)-3:], want) {
		t.Errorf("the dead run's last events = %q, want ...%q", recovered, want)
	}

	// Recovered: runs go again, and recover has nothing left.
	if r := p.rollout("recover", "--user"); r.Code != 0 || !strings.Contains(r.Stderr, "nothing to recover") {
		t.Errorf("second recover: exit %d\n%s", r.Code, r.Stderr)
	}
	if runs, err := executor.UnfinishedRuns(p.journals()); err != nil || len(runs) != 0 {
		t.Errorf("journals after recover: %d, %v", len(runs), err)
	}
}

// TestHostileHealthRollsBack: a release whose health endpoint hangs, and
// one that crash-loops right after the restart (Restart=always brings it
// back, so the unit looks active): per-attempt timeouts end the run, the
// stabilization window sees NRestarts move, and both are rolled back.
func TestHostileHealthRollsBack(t *testing.T) {
	cases := []struct {
		name    string
		release func(p *platform, s *testService) map[string]string
		failed  string // the step that must fail
	}{
		{"health endpoint hangs", func(p *platform, s *testService) map[string]string {
			return map[string]string{"HANG": ""}
		}, "verify"},
		{"service flaps after restart", func(p *platform, s *testService) map[string]string {
			flap := s.Opts
			flap.Args = []string{"-exit-after", "300ms"}
			flap.Extra = []string{"Restart=always", "RestartSec=100ms"}
			return map[string]string{"unit.service": systemdtest.HTTPServiceUnit(s.Name, p.bin, s.Port, s.Dir, flap)}
		}, "settle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t)
			api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
			p.startAll()
			originalUnit := readFile(t, api.UnitPath)
			p.release(api, "v2", tc.release(p, api))
			plan := p.writePlan("plan.hcl", `
pipeline "api" {
  step "backup_unit" "backup" {}
  step "rsync" "deploy" {
    from = "${run.deploy_path}/${service.name}"
    to   = service.working_dir
  }
  step "exec" "install_unit" {
    command = ["cp", "${service.working_dir}/unit.service", service.meta.unit_path]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = "2s" }
}
`+strings.Replace(api.serviceHCL(`type = "api"`), `timeout  = "2s"`, `timeout  = "300ms"`, 1))
			t0 := time.Now()
			r := p.rollout("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", p.dir+"/release")
			t.Logf("run took %s", time.Since(t0).Round(time.Millisecond))
			if r.Code != exitFailed {
				t.Fatalf("exit %d, want 1\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			var failedStep string
			for _, e := range p.readEvents() {
				if e.Event == executor.StepFailed && e.Phase == "" {
					failedStep = e.Step + ": " + e.Error
				}
			}
			if !strings.HasPrefix(failedStep, tc.failed+": ") {
				t.Errorf("failed step = %q, want %s", failedStep, tc.failed)
			}
			t.Logf("failed step: %s", failedStep)
			if v, code := p.get(api, "/version"); v != "v1" || code != 200 {
				t.Errorf("after rollback sso.api reports %q (%d), want v1", v, code)
			}
			if readFile(t, api.UnitPath) != originalUnit {
				t.Errorf("unit file not restored")
			}
		})
	}
}

// TestSecondRunIsRefused: while one run holds a manager, a second one
// against the same manager exits 2 at once, naming the holder.
func TestSecondRunIsRefused(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	plan := p.writePlan("plan.hcl", slowPipeline("20s")+api.serviceHCL(`type = "api"`)+`plan "sso" {}`)

	first := p.start("run", plan, "--user", "--events", p.events)
	ev := p.waitForEvent(first, 30*time.Second, stepEvent(executor.StepStart, "sso.api", "settle"))
	before := p.state(api)

	t0 := time.Now()
	r := p.rollout("run", plan, "--user", "--events", p.events)
	t.Logf("the second run was refused after %s", time.Since(t0).Round(time.Millisecond))
	if r.Code != exitUsage {
		t.Fatalf("second run: exit %d, want 2\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{"another rollout run holds", fmt.Sprintf("pid %d", first.cmd.Process.Pid), "run " + ev.RunID, `plan "sso"`} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("refusal does not name %q:\n%s", want, r.Stderr)
		}
	}
	if p.state(api).InvocationID != before.InvocationID {
		t.Errorf("the refused run restarted the service")
	}
	first.signal(t, syscall.SIGINT)
	first.signalAgain(t, syscall.SIGINT)
	first.wait(t, 30*time.Second)
}

// TestPlanStringsNeverReachAShell: service names, variables and step
// arguments with shell syntax reach commands as argv elements, verbatim:
// nothing in them is executed.
func TestPlanStringsNeverReachAShell(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	victim := filepath.Join(dir, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "argv")
	payload := fmt.Sprintf("; rm -rf %s; $(touch %s) `touch %s` | touch %s", victim, pwned, pwned, pwned)
	planFile := filepath.Join(dir, "plan.hcl")
	writeFile(t, planFile, fmt.Sprintf(`
variable "payload" { default = "" }
pipeline "hostile" {
  step "exec" "echo" {
    command = ["sh", "-c", "printf '%%s\n' \"$@\" > %s", "argv", var.payload, service.name]
  }
}
service "a; rm -rf %s $(touch %s)" {
  unit = "hostile.service"
  type = "hostile"
  health "systemd" {}
}
`, out, victim, pwned))
	c := compileFile(planFile, map[string]string{"payload": payload}, (&planFlags{}).compileOptions())
	if c.Plan == nil {
		// A name with shell syntax may be refused by the plan language:
		// that is as safe. Then only the variable is tested.
		t.Logf("plan refused: %v", c.Diags)
		writeFile(t, planFile, strings.Replace(readFile(t, planFile), fmt.Sprintf("a; rm -rf %s $(touch %s)", victim, pwned), "hostile", 1))
		c = compileFile(planFile, map[string]string{"payload": payload}, (&planFlags{}).compileOptions())
		if c.Plan == nil {
			t.Fatalf("plan: %v", c.Diags)
		}
	}
	fake := systemdfake.New()
	fake.AddUnit("hostile.service", false)
	res, err := executor.Run(t.Context(), c.Plan, executor.Options{Build: steps.NewBuilder(steps.Deps{Systemd: fake})})
	if err != nil || len(res.Succeeded) != 1 {
		t.Fatalf("run: %+v, %v", res, err)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("%s exists: a plan string was executed by a shell", pwned)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("%s is gone: a plan string was executed by a shell", victim)
	}
	got := strings.Split(strings.TrimSuffix(readFile(t, out), "\n"), "\n")
	if len(got) != 2 || got[0] != payload || got[1] != c.Plan.Services[0].Name {
		t.Errorf("the command got %q, want the payload and the service name verbatim, one argv element each", got)
	}
}

// FuzzCompileFlags feeds --var and --service values through the CLI's
// flag checks and the plan compiler: no value may panic, and a value that
// compiles reaches the step's argv as one verbatim element.
func FuzzCompileFlags(f *testing.F) {
	for _, seed := range [][2]string{
		{"region=eu", "a"},
		{"region=", "b"},
		{"=x", ""},
		{"region=$(touch /tmp/pwned)", "a; rm -rf /tmp/x"},
		{"region=\x00\xff", "\n"},
		{"region=${var.region}", "*"},
		{"region=%{ for x in y }", "a,b"},
		{"k=v=w", "..\x00"},
		{"region=" + strings.Repeat("é", 100), " "},
	} {
		f.Add(seed[0], seed[1])
	}
	dir := f.TempDir()
	planFile := filepath.Join(dir, "plan.hcl")
	writeFile(f, planFile, `
variable "region" { default = "eu" }
pipeline "default" {
  step "exec" "echo" { command = ["echo", var.region, service.name] }
}
service "a" { unit = "a.service" }
service "b" {
  unit       = "b.service"
  depends_on = ["a"]
}
`)
	f.Fuzz(func(t *testing.T, kv, service string) {
		flags := planFlags{Vars: []string{kv}, Services: []string{service}}
		fs := NewCmdRun(&IOStreams{}, nil).Flags()
		if err := flags.check(fs); err != nil {
			return
		}
		vars, err := parseVars(flags.Vars)
		if err != nil {
			t.Fatalf("check accepted %q but parseVars refused it: %v", kv, err)
		}
		c := compileFile(planFile, vars, flags.compileOptions())
		if c.Plan == nil {
			return
		}
		region, ok := vars["region"]
		if !ok {
			region = "eu"
		}
		for _, svc := range c.Plan.Services {
			for _, st := range svc.Steps {
				var argv []string
				for _, v := range st.Args["command"].AsValueSlice() {
					argv = append(argv, v.AsString())
				}
				if want := []string{"echo", region, svc.Name}; !slices.Equal(argv, want) {
					t.Errorf("command of %s = %q, want %q", svc.Name, argv, want)
				}
			}
		}
	})
}

// TestBusLostMidRestart kills the D-Bus daemon while rollout waits for a
// restart job: the job's result never arrives, rollout reconnects and
// decides from InvocationID that the restart happened. The unit starts
// exactly once more (a counter its ExecStartPre appends to), and the run
// succeeds without a rollback.
func TestBusLostMidRestart(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	starts := filepath.Join(p.dir, "starts")
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{Extra: []string{
		// The restart job lasts a second: time to kill the bus mid-job.
		fmt.Sprintf("ExecStartPre=/bin/sh -c 'echo start >> %s; sleep 1'", starts),
	}})
	p.startAll()
	// systemd's private socket does not go through the bus daemon, so the
	// test can watch the unit while the bus is down.
	direct, err := steps.Connect(t.Context(), steps.ConnectOptions{Address: p.m.PrivateAddress})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	status := func(unit string) steps.UnitState {
		st, err := direct.Status(t.Context(), unit)
		if err != nil {
			t.Fatalf("status of %s: %v", unit, err)
		}
		return st
	}
	bus := status("dbus.service")
	if bus.MainPID == 0 {
		t.Fatalf("dbus.service has no MainPID")
	}
	before := status(api.Unit)
	plan := p.writePlan("plan.hcl", `
pipeline "api" {
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
`+api.serviceHCL(`type = "api"`))

	s := p.start("run", plan, "--user", "--events", p.events)
	p.waitForEvent(s, 30*time.Second, stepEvent(executor.StepStart, "sso.api", "restart"))
	deadline := time.Now().Add(10 * time.Second)
	for status(api.Unit).ActiveState != "activating" {
		if time.Now().After(deadline) {
			t.Fatalf("the restart job never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(int(bus.MainPID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code := s.wait(t, 60*time.Second)
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, s.stdout.String(), s.errb.String())
	}
	after := status(api.Unit)
	if after.InvocationID == before.InvocationID || after.ActiveState != "active" {
		t.Errorf("after the run: %s, InvocationID %s (before %s)", after.ActiveState, after.InvocationID, before.InvocationID)
	}
	if n := strings.Count(readFile(t, starts), "start"); n != 2 {
		t.Errorf("the unit started %d times, want 2 (the first start and one restart)", n)
	}
	if names := eventNames(p.readEvents(), nil); slices.Contains(names, "ROLLBACK_START sso.api") {
		t.Errorf("a rollback ran: %q", names)
	}
	if nb := status("dbus.service"); nb.MainPID == bus.MainPID {
		t.Errorf("the bus daemon was not replaced (MainPID %d): the kill did not happen", nb.MainPID)
	}
}

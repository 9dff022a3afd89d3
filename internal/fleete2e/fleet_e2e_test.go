package fleete2e

// End-to-end tests of a fleet: the real binary restarts services on three
// hosts made with internal/fakehost (real sshd, real private systemd
// managers, a private /srv per host), over real ssh.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/fakehost"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// buildRollout builds the command once per test binary.
func buildRollout(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "rollout-fleet-bin-")
		if err != nil {
			build.err = err
			return
		}
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		out := filepath.Join(dir, "rollout")
		if b, err := exec.Command(goBin, "build", "-o", out, "github.com/rollout-sh/rollout/cmd/rollout").CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v: %s", err, b)
			return
		}
		build.path = out
	})
	if build.err != nil {
		t.Fatalf("building rollout: %v", build.err)
	}
	return build.path
}

type runResult struct {
	Stdout, Stderr string
	Code           int
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fleet is three hosts and a controller directory.
type fleet struct {
	t      *testing.T
	hosts  []*fakehost.Host
	dir    string
	events string
}

// fleetUnit runs while /srv/NAME/VERSION is not "broken": a release that
// cannot start fails its start job (the check is ExecStartPre, which the
// job waits for), as a bad deploy does. A check in ExecStart would race:
// Type=exec's job is done once the shell is exec'd, before it exits.
const fleetUnit = `[Service]
Type=exec
ExecStartPre=/bin/sh -c 'test "$(cat /srv/%[1]s/VERSION)" != broken'
ExecStart=/bin/sleep 600
`

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{t: t, dir: t.TempDir()}
	f.events = filepath.Join(f.dir, "events.jsonl")
	for _, name := range []string{"app1", "app2", "app3"} {
		f.hosts = append(f.hosts, fakehost.Start(t, name))
	}
	// db on app1, api everywhere, web on app2 and app3.
	for i, h := range f.hosts {
		units := []string{"api"}
		if i == 0 {
			units = append(units, "db")
		} else {
			units = append(units, "web")
		}
		var script strings.Builder
		for _, u := range units {
			fmt.Fprintf(&script, "mkdir -p /srv/%[1]s && echo v1 >/srv/%[1]s/VERSION && cat >/srv/cfg/systemd/user/%[1]s.service <<'EOF'\n%[2]sEOF\n", u, fmt.Sprintf(fleetUnit, u))
		}
		script.WriteString("systemctl --user daemon-reload && systemctl --user start " + strings.Join(units, ".service ") + ".service")
		h.Stdout(t, script.String())
	}
	return f
}

func (f *fleet) host(name string) *fakehost.Host {
	for _, h := range f.hosts {
		if h.Name == name {
			return h
		}
	}
	f.t.Fatalf("no host %s", name)
	return nil
}

// plan writes the fleet's plan with the given plan block.
func (f *fleet) plan(planBlock string) string {
	var b strings.Builder
	for _, h := range f.hosts {
		b.WriteString(h.HCL("web"))
	}
	b.WriteString(`
defaults {
  health_timeout  = "2s"
  health_retries  = 2
  health_interval = "200ms"
}

pipeline "default" {
  step "backup_unit" "backup" {}
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${host.name}/${service.name}"
    to   = "/srv/${service.name}"
  }
  step "exec" "mark" {
    command = ["sh", "-c", "echo \"$1\" >>/srv/marks", "mark", "${service.name} on ${host.name}; $(id) 'q'"]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}

service "db" {
  unit  = "db.service"
  hosts = ["app1"]
}

service "api" {
  unit       = "api.service"
  host_tags  = ["web"]
  depends_on = ["db"]
  serial     = [1, "100%"]
}

service "web" {
  unit       = "web.service"
  hosts      = ["app2", "app3"]
  depends_on = ["api"]
}
`)
	b.WriteString(planBlock)
	path := filepath.Join(f.dir, "fleet.hcl")
	writeFile(f.t, path, b.String())
	return path
}

func (f *fleet) command(args ...string) *exec.Cmd {
	return f.controller("run", args...)
}

// controller is a rollout process of a controller whose own lock and
// journal are in dir: --user keys them on the user bus's socket path (the
// lock beside it) and on XDG_STATE_HOME, so two controllers share nothing
// but the hosts. No local service runs, so nothing listens on that bus.
func (f *fleet) controller(dir string, args ...string) *exec.Cmd {
	dir = filepath.Join(f.dir, dir)
	os.MkdirAll(dir, 0o700)
	cmd := exec.Command(buildRollout(f.t), args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(dir, "bus"),
		"XDG_STATE_HOME="+filepath.Join(dir, "state"), "NO_COLOR=1")
	cmd.Dir = f.dir
	return cmd
}

func (f *fleet) rollout(args ...string) runResult {
	f.t.Helper()
	return f.result(f.command(args...))
}

func (f *fleet) result(cmd *exec.Cmd) runResult {
	f.t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatalf("running rollout: %v", err)
	}
	return runResult{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

func (f *fleet) readEvents() []executor.Event {
	f.t.Helper()
	data, err := os.ReadFile(f.events)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	evs, bad, err := executor.ReadEvents(bytes.NewReader(data))
	if err != nil || bad > 0 {
		f.t.Fatalf("events: %d bad lines, %v", bad, err)
	}
	return evs
}

// invocations reads each unit's InvocationID on each host: "unit@host" → id.
func (f *fleet) invocations() map[string]string {
	out := map[string]string{}
	for _, h := range f.hosts {
		for _, u := range []string{"db", "api", "web"} {
			id := strings.TrimSpace(h.Stdout(f.t, "systemctl --user show -p InvocationID --value "+u+".service 2>/dev/null || true"))
			if id != "" {
				out[u+"@"+h.Name] = id
			}
		}
	}
	return out
}

func indexOf(evs []executor.Event, event, service string) int {
	return slices.IndexFunc(evs, func(e executor.Event) bool { return e.Event == event && e.Service == service })
}

func TestFleetE2E(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	plan := f.plan(`plan "fleet" {
  max_parallel = 4
  on_failure   = "continue"
}
`)
	instances := []string{"db@app1", "api@app1", "api@app2", "api@app3", "web@app2", "web@app3"}

	t.Run("restarts every instance in order on its host", func(t *testing.T) {
		before := f.invocations()
		res := f.rollout("run", plan, "--user", "--events", f.events, "--no-tty")
		if res.Code != 0 {
			t.Fatalf("exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		after := f.invocations()
		for k, id := range before {
			if after[k] == id || after[k] == "" {
				t.Errorf("%s: InvocationID %q → %q, not restarted", k, id, after[k])
			}
		}
		evs := f.readEvents()
		for _, inst := range instances {
			i := indexOf(evs, executor.ServiceRestartSuccess, inst)
			if i < 0 {
				t.Fatalf("no SERVICE_RESTART_SUCCESS for %s", inst)
			}
			if host := strings.SplitN(inst, "@", 2)[1]; evs[i].Host != host {
				t.Errorf("%s: event host %q, want %q", inst, evs[i].Host, host)
			}
		}
		// db before any api; api@app1 (the first batch) before the other
		// api instances; every api before any web.
		dbDone := indexOf(evs, executor.ServiceRestartSuccess, "db@app1")
		first := indexOf(evs, executor.ServiceRestartSuccess, "api@app1")
		for _, inst := range []string{"api@app1", "api@app2", "api@app3"} {
			if s := indexOf(evs, executor.ServiceRestartStart, inst); s < dbDone {
				t.Errorf("%s started before db@app1 finished", inst)
			}
		}
		for _, inst := range []string{"api@app2", "api@app3"} {
			if s := indexOf(evs, executor.ServiceRestartStart, inst); s < first {
				t.Errorf("%s started before the first batch (api@app1) finished", inst)
			}
		}
		for _, web := range []string{"web@app2", "web@app3"} {
			s := indexOf(evs, executor.ServiceRestartStart, web)
			for _, api := range []string{"api@app1", "api@app2", "api@app3"} {
				if s < indexOf(evs, executor.ServiceRestartSuccess, api) {
					t.Errorf("%s started before %s finished", web, api)
				}
			}
		}
		// The exec step ran on each host with its argument verbatim.
		if got := f.host("app2").Stdout(t, "cat /srv/marks"); !strings.Contains(got, "api on app2; $(id) 'q'\n") || strings.Contains(got, "db on") {
			t.Errorf("app2 /srv/marks: %q", got)
		}
	})

	t.Run("deploy puts each release under its own host's /srv", func(t *testing.T) {
		rel := filepath.Join(f.dir, "rel")
		for _, h := range []string{"app1", "app2", "app3"} {
			for _, s := range []string{"db", "api", "web"} {
				writeFile(t, filepath.Join(rel, h, s, "VERSION"), "v2-"+h+"\n")
			}
		}
		res := f.rollout("run", plan, "--user", "--events", f.events, "--no-tty", "--deploy", "--deploy-path", rel)
		if res.Code != 0 {
			t.Fatalf("exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		for _, h := range f.hosts {
			if got := strings.TrimSpace(h.Stdout(t, "cat /srv/api/VERSION")); got != "v2-"+h.Name {
				t.Errorf("%s: /srv/api/VERSION = %q, want v2-%s", h.Name, got, h.Name)
			}
		}
		if got := strings.TrimSpace(f.host("app1").Stdout(t, "ls /srv/web 2>&1 || true")); !strings.Contains(got, "No such file") {
			t.Errorf("web was deployed to app1, which does not run it: %q", got)
		}
		if _, err := os.Stat("/srv/api/VERSION"); err == nil {
			t.Error("/srv/api/VERSION exists on the controller")
		}
	})

	t.Run("a broken release on one host is rolled back there, the others go on", func(t *testing.T) {
		rel := filepath.Join(f.dir, "rel3")
		for _, h := range []string{"app1", "app2", "app3"} {
			for _, s := range []string{"db", "api", "web"} {
				v := "v3-" + h
				if h == "app2" && s == "api" {
					v = "broken"
				}
				writeFile(t, filepath.Join(rel, h, s, "VERSION"), v+"\n")
			}
		}
		start := len(f.readEvents())
		res := f.rollout("run", plan, "--user", "--events", f.events, "--no-tty", "--deploy", "--deploy-path", rel)
		if res.Code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		if got := strings.TrimSpace(f.host("app2").Stdout(t, "cat /srv/api/VERSION; systemctl --user is-active api.service")); got != "v2-app2\nactive" {
			t.Errorf("app2 after the rollback: %q, want the previous release, active", got)
		}
		// The other api instances went on (on_failure continue); web
		// needs every api instance and was skipped.
		for _, h := range []string{"app1", "app3"} {
			if got := strings.TrimSpace(f.host(h).Stdout(t, "cat /srv/api/VERSION")); got != "v3-"+h {
				t.Errorf("%s: /srv/api/VERSION = %q, want v3-%s", h, got, h)
			}
		}
		evs := f.readEvents()[start:]
		rb := indexOf(evs, executor.RollbackSuccess, "api@app2")
		if rb < 0 || evs[rb].Host != "app2" {
			t.Fatalf("no ROLLBACK_SUCCESS for api@app2 on app2")
		}
		for _, web := range []string{"web@app2", "web@app3"} {
			if indexOf(evs, executor.ServiceSkipped, web) < 0 {
				t.Errorf("%s was not skipped", web)
			}
		}
		if got := strings.TrimSpace(f.host("app3").Stdout(t, "cat /srv/web/VERSION")); got != "v2-app3" {
			t.Errorf("app3 web: %q, want untouched v2-app3", got)
		}
	})

	t.Run("--host narrows the run to one host", func(t *testing.T) {
		before := f.invocations()
		start := len(f.readEvents())
		res := f.rollout("run", plan, "--user", "--events", f.events, "--no-tty", "--host", "app3")
		if res.Code != 0 {
			t.Fatalf("exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		after := f.invocations()
		for k, id := range before {
			changed := after[k] != id
			if want := strings.HasSuffix(k, "@app3"); changed != want {
				t.Errorf("%s restarted = %v, want %v", k, changed, want)
			}
		}
		for _, e := range f.readEvents()[start:] {
			if e.Service != "" && e.Host != "app3" {
				t.Errorf("event %s for %s on %q", e.Event, e.Service, e.Host)
			}
		}
	})

	t.Run("plan show lists instances and hosts", func(t *testing.T) {
		res := f.rollout("plan", "show", plan, "--format", "json", "--host", "app1")
		if res.Code != 0 {
			t.Fatalf("exit %d: %s", res.Code, res.Stderr)
		}
		for _, want := range []string{`"name": "api@app1"`, `"host": "app1"`, `"service": "api"`, `"hosts": [`} {
			if !strings.Contains(res.Stdout, want) {
				t.Errorf("plan show json lacks %s", want)
			}
		}
		if strings.Contains(res.Stdout, "app2") {
			t.Error("--host app1 still shows app2")
		}
	})

	t.Run("two controllers race for the same hosts", func(t *testing.T) {
		slow := strings.Replace(readFile(t, plan), `  step "health_check" "verify" {}`, `  step "exec" "slow" {
    command = ["sh", "-c", "touch /srv/slow-started; sleep 20; rm -f /srv/slow-started"]
  }
  step "health_check" "verify" {}`, 1)
		slowPlan := filepath.Join(f.dir, "slow.hcl")
		writeFile(t, slowPlan, slow)
		waitSlow := func(h *fakehost.Host, a *exec.Cmd, out *bytes.Buffer) {
			waitForFile(t, h, "/srv/slow-started", a, out)
		}
		start := len(f.readEvents())
		a := f.controller("ctl-a", "run", slowPlan, "--user", "--events", f.events, "--no-tty", "--service", "db")
		var aOut bytes.Buffer
		a.Stdout, a.Stderr = &aOut, &aOut
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		waitSlow(f.host("app1"), a, &aOut)
		// B is refused at once, naming A's run.
		b := f.result(f.controller("ctl-b", "run", plan, "--user", "--events", f.events, "--no-tty"))
		if b.Code != 2 || !strings.Contains(b.Stderr, "the lock of host app1") || !strings.Contains(b.Stderr, `plan "fleet"`) {
			t.Fatalf("second controller: exit %d, want 2 naming the holder\n%s", b.Code, b.Stderr)
		}
		// With --lock-wait it waits for A, then runs.
		b = f.result(f.controller("ctl-b", "run", plan, "--user", "--events", f.events, "--no-tty", "--service", "db", "--lock-wait", "2m"))
		if b.Code != 0 {
			t.Fatalf("second controller with --lock-wait: exit %d\n%s", b.Code, b.Stderr)
		}
		if err := a.Wait(); err != nil {
			t.Fatalf("controller A: %v\n%s", err, aOut.String())
		}
		evs := f.readEvents()[start:]
		var order []string
		for _, e := range evs {
			if e.Event == executor.RunStart || e.Event == executor.RunSuccess {
				order = append(order, e.Event)
			}
		}
		if strings.Join(order, " ") != "RUN_START RUN_SUCCESS RUN_START RUN_SUCCESS" {
			t.Fatalf("the runs overlapped: %v", order)
		}

		// A controller that dies (SIGKILL) leaves no lock on the hosts.
		a = f.controller("ctl-c", "run", slowPlan, "--user", "--events", f.events, "--no-tty", "--service", "db")
		aOut.Reset()
		a.Stdout, a.Stderr = &aOut, &aOut
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		waitSlow(f.host("app1"), a, &aOut)
		a.Process.Signal(syscall.SIGKILL)
		a.Wait()
		b = f.result(f.controller("ctl-b", "run", plan, "--user", "--events", f.events, "--no-tty", "--service", "db", "--lock-wait", "20s"))
		if b.Code != 0 {
			t.Fatalf("after the holder died: exit %d\n%s", b.Code, b.Stderr)
		}
	})

	t.Run("two runs from one controller on different hosts both go", func(t *testing.T) {
		// The same controller (one state directory, one lock path): a
		// plan on hosts only takes the hosts' locks, not the
		// controller's, so a second run on other hosts is not refused,
		// and neither run takes the other's live journal for a dead one.
		slow := strings.Replace(readFile(t, plan), `  step "health_check" "verify" {}`, `  step "exec" "slow" {
    command = ["sh", "-c", "touch /srv/slow-started; sleep 4; rm -f /srv/slow-started"]
  }
  step "health_check" "verify" {}`, 1)
		slowPlan := filepath.Join(f.dir, "slow-shared.hcl")
		writeFile(t, slowPlan, slow)
		start := len(f.readEvents())
		a := f.controller("ctl-shared", "run", slowPlan, "--user", "--events", f.events, "--no-tty", "--service", "db")
		var aOut bytes.Buffer
		a.Stdout, a.Stderr = &aOut, &aOut
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		waitForFile(t, f.host("app1"), "/srv/slow-started", a, &aOut)
		b := f.result(f.controller("ctl-shared", "run", plan, "--user", "--events", f.events, "--no-tty", "--service", "web"))
		if b.Code != 0 {
			a.Process.Kill()
			t.Fatalf("second run from the same controller, other hosts: exit %d\n%s", b.Code, b.Stderr)
		}
		if err := a.Wait(); err != nil {
			t.Fatalf("first run: %v\n%s", err, aOut.String())
		}
		// They overlapped: the second started and ended inside the first.
		var order []string
		for _, e := range f.readEvents()[start:] {
			if e.Event == executor.RunStart || e.Event == executor.RunSuccess {
				order = append(order, e.Event+":"+e.RunID)
			}
		}
		if len(order) != 4 || strings.Split(order[0], ":")[1] != strings.Split(order[3], ":")[1] {
			t.Fatalf("the runs did not overlap: %v", order)
		}
		left, _ := filepath.Glob(filepath.Join(f.dir, "ctl-shared", "state", "rollout", "runs", "*", "*.journal"))
		if len(left) != 0 {
			t.Errorf("journals left behind: %q", left)
		}
	})

	t.Run("a dead host fails its instances in bounded time, naming it", func(t *testing.T) {
		f.host("app3").Stop()
		start := len(f.readEvents())
		t0 := time.Now()
		res := f.rollout("run", plan, "--user", "--events", f.events, "--no-tty")
		if res.Code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		if d := time.Since(t0); d > 90*time.Second {
			t.Errorf("the run took %s", d)
		}
		evs := f.readEvents()[start:]
		i := indexOf(evs, executor.ServiceRestartFailed, "api@app3")
		if i < 0 || evs[i].Host != "app3" || !strings.Contains(evs[i].Error, "app3") {
			t.Fatalf("api@app3 did not fail naming its host: %+v", evs[i:])
		}
		if indexOf(evs, executor.ServiceRestartSuccess, "api@app2") < 0 {
			t.Error("api@app2 did not go on")
		}
	})
}

// TestFleetRecoverE2E kills a run on three hosts with SIGKILL while every
// api instance is between its deploy and its end, then `rollout recover`
// puts every host back.
func TestFleetRecoverE2E(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	plan := f.plan(`plan "fleet" {
  max_parallel = 0
}
`)
	// A slow step after the restart: the kill lands while every instance
	// has deployed and restarted.
	data := strings.Replace(readFile(t, plan), `  step "health_check" "verify" {}`, `  step "exec" "slow" {
    command = ["sh", "-c", "touch /srv/slow-started; sleep 30"]
  }
  step "health_check" "verify" {}`, 1)
	data = strings.Replace(data, `  serial     = [1, "100%"]`, "", 1)
	data = strings.Replace(data, `  depends_on = ["db"]`, "", 1)
	writeFile(t, plan, data)
	rel := filepath.Join(f.dir, "rel")
	for _, h := range []string{"app1", "app2", "app3"} {
		for _, s := range []string{"db", "api", "web"} {
			writeFile(t, filepath.Join(rel, h, s, "VERSION"), "v2\n")
		}
	}
	os.MkdirAll(filepath.Join(f.dir, "run"), 0o700)
	cmd := f.command("run", plan, "--user", "--events", f.events, "--no-tty", "--service", "api", "--deploy", "--deploy-path", rel)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, h := range f.hosts {
		for {
			if o, _ := h.Run("test -e /srv/slow-started && echo yes"); strings.TrimSpace(o) == "yes" {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("the slow step never started on %s:\n%s", h.Name, out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for _, h := range f.hosts {
		if got := strings.TrimSpace(h.Stdout(t, "cat /srv/api/VERSION")); got != "v2" {
			t.Fatalf("%s before recover: %q, want the deployed v2", h.Name, got)
		}
	}
	res := f.rollout("recover", "--user", "--events", f.events)
	if res.Code != 0 {
		t.Fatalf("recover: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, h := range f.hosts {
		if got := strings.TrimSpace(h.Stdout(t, "cat /srv/api/VERSION; systemctl --user is-active api.service")); got != "v1\nactive" {
			t.Errorf("%s after recover: %q, want v1 and active", h.Name, got)
		}
	}
	var hosts []string
	for _, e := range f.readEvents() {
		if e.Event == executor.RollbackSuccess {
			hosts = append(hosts, e.Host)
		}
	}
	slices.Sort(hosts)
	if !slices.Equal(hosts, []string{"app1", "app2", "app3"}) {
		t.Errorf("ROLLBACK_SUCCESS on hosts %v, want app1 app2 app3", hosts)
	}
}

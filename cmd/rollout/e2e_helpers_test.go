package main

// Helpers for the tests that run the real rollout binary against a real
// `systemd --user` manager (internal/systemdtest) restarting real HTTP
// services (internal/testsvc).

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
)

var rolloutBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildRollout builds this command once per test binary and returns its path.
func buildRollout(t testing.TB) string {
	t.Helper()
	rolloutBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "rollout-bin-")
		if err != nil {
			rolloutBuild.err = err
			return
		}
		rolloutBuild.dir = dir
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		out := filepath.Join(dir, "rollout")
		cmd := exec.Command(goBin, "build", "-o", out, "github.com/rollout-sh/rollout/cmd/rollout")
		if b, err := cmd.CombinedOutput(); err != nil {
			rolloutBuild.err = fmt.Errorf("go build: %v: %s", err, b)
			return
		}
		rolloutBuild.path = out
	})
	if rolloutBuild.err != nil {
		t.Fatalf("building rollout: %v", rolloutBuild.err)
	}
	return rolloutBuild.path
}

// platform is a small real platform: a private systemd --user manager and
// HTTP services whose units, code directories and release directories the
// test writes.
type platform struct {
	t        *testing.T
	m        *systemdtest.Manager
	dir      string // the test's root directory
	bin      string // testsvc
	events   string // the events log runs append to
	services []*testService
	sd       *sdbus.Conn // see conn
}

// testService is one service of a platform: its unit runs testsvc from Dir,
// which is the service's working_dir (the code rsync deploys into).
type testService struct {
	Name     string
	Unit     string
	Port     int
	Dir      string // working_dir: VERSION, UNHEALTHY, ...
	Release  string // <platform>/release/<name>: what --deploy ships
	UnitPath string
	Opts     systemdtest.UnitOptions
	// Meta is added to the service's meta (beside unit_path) in serviceHCL.
	Meta map[string]string
}

func newPlatform(t *testing.T) *platform {
	t.Helper()
	m := systemdtest.Start(t)
	dir := t.TempDir()
	return &platform{t: t, m: m, dir: dir, bin: m.Testsvc(t), events: filepath.Join(dir, "events.jsonl")}
}

// addService writes the unit file and code directory of a service at
// version; call reload (or startAll) after adding them all.
func (p *platform) addService(name, version string, opts systemdtest.UnitOptions) *testService {
	p.t.Helper()
	s := &testService{
		Name:    name,
		Unit:    "rt-" + strings.ReplaceAll(name, ".", "-") + ".service",
		Port:    systemdtest.FreePort(p.t),
		Dir:     filepath.Join(p.dir, "srv", name),
		Release: filepath.Join(p.dir, "release", name),
		Opts:    opts,
	}
	s.UnitPath = filepath.Join(p.m.UnitDir, s.Unit)
	for _, d := range []string{s.Dir, s.Release} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			p.t.Fatal(err)
		}
	}
	writeFile(p.t, filepath.Join(s.Dir, "VERSION"), version+"\n")
	p.m.WriteUnitFile(p.t, s.Unit, s.unitText(p.bin))
	p.services = append(p.services, s)
	return s
}

func (s *testService) unitText(bin string) string {
	return systemdtest.HTTPServiceUnit(s.Name, bin, s.Port, s.Dir, s.Opts)
}

// release puts version into the service's release directory, as a build
// would, with the unit file the release ships (unit.service, the current
// one unless files overrides it); files maps extra file names to contents
// (UNHEALTHY, ...).
func (p *platform) release(s *testService, version string, files map[string]string) {
	p.t.Helper()
	writeFile(p.t, filepath.Join(s.Release, "VERSION"), version+"\n")
	writeFile(p.t, filepath.Join(s.Release, "unit.service"), s.unitText(p.bin))
	for name, content := range files {
		writeFile(p.t, filepath.Join(s.Release, name), content)
	}
}

func (p *platform) reload() { p.t.Helper(); p.m.DaemonReload(p.t) }

// startAll reloads, starts every service and waits until each answers.
func (p *platform) startAll() {
	p.t.Helper()
	p.reload()
	conn := p.conn()
	for _, s := range p.services {
		ch := make(chan string, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := conn.StartUnitContext(ctx, s.Unit, "replace", ch); err != nil {
			cancel()
			p.t.Fatalf("starting %s: %v", s.Unit, err)
		}
		select {
		case res := <-ch:
			if res != "done" {
				p.t.Fatalf("starting %s: job %s", s.Unit, res)
			}
		case <-ctx.Done():
			p.t.Fatalf("starting %s: timed out", s.Unit)
		}
		cancel()
	}
	for _, s := range p.services {
		p.waitHealthy(s)
	}
}

func (p *platform) waitHealthy(s *testService) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, code := p.get(s, "/health"); code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s never became healthy", s.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// conn is a go-systemd connection to the manager, for assertions.
func (p *platform) conn() *sdbus.Conn {
	p.t.Helper()
	if p.sd != nil {
		return p.sd
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := p.m.Conn(ctx)
	if err != nil {
		cancel()
		p.t.Fatalf("connecting to the manager: %v", err)
	}
	p.sd = c
	p.t.Cleanup(func() { c.Close(); cancel() })
	return c
}

// unitState reads the properties a test asserts on.
type unitState struct {
	ActiveState  string
	InvocationID string
	MainPID      uint32
	FragmentPath string
}

func (p *platform) state(s *testService) unitState {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	props, err := p.conn().GetUnitPropertiesContext(ctx, s.Unit)
	if err != nil {
		p.t.Fatalf("reading %s: %v", s.Unit, err)
	}
	svc, err := p.conn().GetUnitTypePropertiesContext(ctx, s.Unit, "Service")
	if err != nil {
		p.t.Fatalf("reading %s: %v", s.Unit, err)
	}
	st := unitState{}
	st.ActiveState, _ = props["ActiveState"].(string)
	st.FragmentPath, _ = props["FragmentPath"].(string)
	if id, ok := props["InvocationID"].([]byte); ok {
		st.InvocationID = hex.EncodeToString(id)
	}
	st.MainPID, _ = svc["MainPID"].(uint32)
	return st
}

// get fetches path from the service; code is 0 when it does not answer.
func (p *platform) get(s *testService, path string) (string, int) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, path))
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), resp.StatusCode
}

// writePlan writes a plan file into the platform's directory. The
// services' HCL comes from serviceHCL so tests only write pipelines and plans.
func (p *platform) writePlan(name, hcl string) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	writeFile(p.t, path, hcl)
	return path
}

// serviceHCL declares s with an http health check and the given extra
// attributes (type, depends_on, ...); meta holds unit_path and s.Meta.
func (s *testService) serviceHCL(extra string) string {
	meta := []string{fmt.Sprintf("unit_path = %q", s.UnitPath)}
	keys := slices.Sorted(maps.Keys(s.Meta))
	for _, k := range keys {
		meta = append(meta, fmt.Sprintf("%s = %q", k, s.Meta[k]))
	}
	return fmt.Sprintf(`service %q {
  unit        = %q
  working_dir = %q
  meta        = { %s }
%s
  health "http" {
    url      = "http://127.0.0.1:%d/health"
    timeout  = "2s"
    retries  = 3
    interval = "200ms"
  }
}
`, s.Name, s.Unit, s.Dir, strings.Join(meta, ", "), indentHCL(extra), s.Port)
}

func indentHCL(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ")
}

// runResult is what one rollout process did.
type runResult struct {
	Stdout, Stderr string
	Code           int
}

// rollout runs the binary with the manager's environment and returns its
// output and exit code. It never fails the test by itself.
func (p *platform) rollout(args ...string) runResult {
	p.t.Helper()
	cmd := p.command(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("running rollout: %v", err)
	}
	return runResult{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

// command prepares a rollout process against the platform's manager.
func (p *platform) command(args ...string) *exec.Cmd {
	cmd := exec.Command(buildRollout(p.t), args...)
	cmd.Env = append(os.Environ(), p.m.Env()...)
	cmd.Env = append(cmd.Env, "NO_COLOR=1")
	cmd.Dir = p.dir
	return cmd
}

// journals is where runs against the platform's manager keep their crash
// journals, as the rollout binary computes it from its environment.
func (p *platform) journals() string {
	env := map[string]string{}
	for _, kv := range append(os.Environ(), p.m.Env()...) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return executor.StatePathsFor(true, func(k string) string { return env[k] }).Journals
}

// readEvents reads the platform's events log.
func (p *platform) readEvents() []executor.Event {
	p.t.Helper()
	f, err := os.Open(p.events)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	evs, bad, err := executor.ReadEvents(f)
	if err != nil || bad > 0 {
		p.t.Fatalf("events log: %d bad lines, err %v", bad, err)
	}
	return evs
}

// eventNames lists "EVENT service" for the events that match keep.
func eventNames(evs []executor.Event, keep func(executor.Event) bool) []string {
	var out []string
	for _, e := range evs {
		if keep == nil || keep(e) {
			out = append(out, strings.TrimSpace(e.Event+" "+e.Service))
		}
	}
	return out
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

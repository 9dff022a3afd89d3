// Package systemdtest starts a real `systemd --user` manager for tests
// (through internal/usermanager) and builds internal/testsvc to run under
// it.
//
// As root, Start runs a private manager through internal/usermanager (a
// private mount namespace, private XDG_RUNTIME_DIR and XDG_CONFIG_HOME, a
// cgroup of its own), so several test binaries can each run their own
// manager at once. A non-root developer whose session already has a working user
// manager (DBUS_SESSION_BUS_ADDRESS) gets that one instead. When neither
// works the test is skipped, or fails in CI (CI=true or CI=1, see internal/testenv): CI must never skip.
//
// Code under test should dial Manager.BusAddress explicitly instead of
// reading DBUS_SESSION_BUS_ADDRESS, so that tests need not change the
// process environment.
package systemdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/rollout-sh/rollout/internal/testenv"
	"github.com/rollout-sh/rollout/internal/usermanager"
)

// StartTimeout caps how long Start waits for the manager to be running.
const StartTimeout = usermanager.DefaultStartTimeout

// Manager is a running systemd user manager.
type Manager struct {
	// BusAddress is the manager's D-Bus session bus, "unix:path=.../bus".
	BusAddress string
	// PrivateAddress is systemd's own socket, "unix:path=.../systemd/private":
	// no bus daemon, so clients must not send Hello.
	PrivateAddress string
	RuntimeDir     string // XDG_RUNTIME_DIR
	ConfigHome     string // XDG_CONFIG_HOME
	UnitDir        string // $XDG_CONFIG_HOME/systemd/user
	// StartDuration is how long the manager took to reach "running"
	// (measured 0.19–0.27 s here, 20 ms polls).
	StartDuration time.Duration

	ours    bool                 // started by us (else a developer's existing manager)
	own     *usermanager.Manager // the manager we started
	baseDir string               // build output (and nothing else)
	admin   *sdbus.Conn

	reloadMu sync.Mutex // serializes DaemonReload

	mu      sync.Mutex
	written []string // unit files written into a manager we do not own

	buildOnce   sync.Once
	testsvcPath string
	buildErr    error
}

// Start returns a running manager for t, stopped at t's cleanup. It skips t
// when no manager can be had, or fails it in CI (internal/testenv).
func Start(t testing.TB) *Manager {
	t.Helper()
	m, stop, err := StartMain()
	Require(t, err)
	t.Cleanup(stop)
	return m
}

// Require applies the skip-or-fail policy to err from StartMain: nil does
// nothing; otherwise t fails in CI and is skipped elsewhere (internal/testenv).
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	testenv.Missing(t, "systemdtest: no systemd user manager for this real-systemd test: %v "+
		"(run as root, or from a session with a working `systemctl --user`)", err)
}

// StartMain starts a manager without a testing.TB, for TestMain. stop kills
// the manager and removes its directories; call it when done. On error the
// caller should apply Require in each test.
func StartMain() (m *Manager, stop func(), err error) {
	if os.Geteuid() == 0 {
		return startOwn()
	}
	if addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); addr != "" {
		return useExisting(addr)
	}
	return nil, nil, errors.New("not root (cannot unshare a mount namespace) and DBUS_SESSION_BUS_ADDRESS is unset")
}

func startOwn() (*Manager, func(), error) {
	// The system temp dir keeps socket paths short (sun_path is 108 bytes).
	own, err := usermanager.Start(usermanager.Options{Prefix: "sdt-", StartTimeout: StartTimeout})
	if err != nil {
		return nil, nil, err
	}
	m := &Manager{
		BusAddress:     own.BusAddress,
		PrivateAddress: own.PrivateAddress,
		RuntimeDir:     own.RuntimeDir,
		ConfigHome:     own.ConfigHome,
		UnitDir:        own.UnitDir,
		StartDuration:  own.StartDuration,
		ours:           true,
		own:            own,
		// The private socket keeps working while a test kills the bus daemon.
		admin: own.Admin,
	}
	return m, m.stopOwn, nil
}

func (m *Manager) stopOwn() {
	m.own.Stop()
	if m.baseDir != "" {
		os.RemoveAll(m.baseDir)
	}
}

// useExisting checks a developer's own user manager at addr.
func useExisting(addr string) (*Manager, func(), error) {
	began := time.Now()
	conn, err := usermanager.Probe(addr, StartTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("user manager at DBUS_SESSION_BUS_ADDRESS=%q: %w", addr, err)
	}
	config := os.Getenv("XDG_CONFIG_HOME")
	if config == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		config = filepath.Join(home, ".config")
	}
	runtimeDir := os.Getenv("XDG_RUNTIME_DIR")
	m := &Manager{
		BusAddress:    addr,
		RuntimeDir:    runtimeDir,
		ConfigHome:    config,
		UnitDir:       filepath.Join(config, "systemd", "user"),
		StartDuration: time.Since(began),
		admin:         conn,
	}
	if runtimeDir != "" {
		m.PrivateAddress = "unix:path=" + filepath.Join(runtimeDir, "systemd", "private")
	}
	if err := os.MkdirAll(m.UnitDir, 0o755); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return m, m.stopExisting, nil
}

// stopExisting undoes what the tests did to a manager we do not own: it
// stops and removes the units they wrote.
func (m *Manager) stopExisting() {
	m.mu.Lock()
	written := m.written
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range written {
		ch := make(chan string, 1)
		if _, err := m.admin.StopUnitContext(ctx, name, "replace", ch); err == nil {
			select {
			case <-ch:
			case <-ctx.Done():
			}
		}
		_ = m.admin.ResetFailedUnitContext(ctx, name)
		os.Remove(filepath.Join(m.UnitDir, name))
	}
	if len(written) > 0 {
		_ = m.admin.ReloadContext(ctx)
	}
	m.admin.Close()
	if m.baseDir != "" {
		os.RemoveAll(m.baseDir)
	}
}

// testsvcDir returns a private directory for build output, made on first use.
func (m *Manager) testsvcDir() (string, error) {
	if m.baseDir == "" {
		dir, err := os.MkdirTemp("", "sdt-")
		if err != nil {
			return "", err
		}
		m.baseDir = dir
	}
	return m.baseDir, nil
}

// Env returns the variables a child process (systemctl --user, the rollout
// binary) needs to reach this manager, to append to os.Environ().
func (m *Manager) Env() []string {
	return []string{
		"XDG_RUNTIME_DIR=" + m.RuntimeDir,
		"XDG_CONFIG_HOME=" + m.ConfigHome,
		"DBUS_SESSION_BUS_ADDRESS=" + m.BusAddress,
	}
}

// Conn dials a new go-systemd connection to the manager, for assertions;
// ctx owns the connection's lifetime. The caller closes it.
func (m *Manager) Conn(ctx context.Context) (*sdbus.Conn, error) {
	return usermanager.Dial(ctx, m.BusAddress)
}

// WriteUnit writes a unit file into UnitDir and reloads the manager.
func (m *Manager) WriteUnit(t testing.TB, name, content string) {
	t.Helper()
	m.WriteUnitFile(t, name, content)
	m.DaemonReload(t)
}

// WriteUnitFile writes a unit file into UnitDir without reloading: write
// several, then DaemonReload once.
func (m *Manager) WriteUnitFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(m.UnitDir, name), []byte(content), 0o644); err != nil {
		t.Fatalf("writing unit %s: %v", name, err)
	}
	if !m.ours {
		m.mu.Lock()
		m.written = append(m.written, name)
		m.mu.Unlock()
	}
}

// DaemonReload reloads the manager's unit files. Reloads are serialized,
// since parallel tests share the manager and a reload in flight already
// picks up every file written before it.
func (m *Manager) DaemonReload(t testing.TB) {
	t.Helper()
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.admin.ReloadContext(ctx); err != nil {
		t.Fatalf("daemon-reload: %v", err)
	}
}

// Testsvc returns the path of internal/testsvc built for this manager; it
// is built once per Manager.
func (m *Manager) Testsvc(t testing.TB) string {
	t.Helper()
	m.buildOnce.Do(func() {
		m.mu.Lock()
		dir, err := m.testsvcDir()
		m.mu.Unlock()
		if err != nil {
			m.buildErr = err
			return
		}
		m.testsvcPath, m.buildErr = buildTestsvc(dir)
	})
	if m.buildErr != nil {
		t.Fatalf("building testsvc: %v", m.buildErr)
	}
	return m.testsvcPath
}

// BuildTestsvc builds internal/testsvc into a temporary directory of t and
// returns the binary's path, for tests without a manager.
func BuildTestsvc(t testing.TB) string {
	t.Helper()
	path, err := buildTestsvc(t.TempDir())
	if err != nil {
		t.Fatalf("building testsvc: %v", err)
	}
	return path
}

func buildTestsvc(dir string) (string, error) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out := filepath.Join(dir, "testsvc")
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/rollout-sh/rollout/internal/testsvc")
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, buf.String())
	}
	return out, nil
}

// UnitOptions shape the unit HTTPServiceUnit writes.
type UnitOptions struct {
	// Reload adds ExecReload=/bin/kill -HUP $MAINPID.
	Reload bool
	// Type is the service type; "" means exec, which fails the start job
	// when the binary cannot run.
	Type string
	// Args are extra testsvc flags (-ready-delay 1s, -fail-start, ...).
	Args []string
	// Extra lines for the [Service] section (Restart=, TimeoutStartSec=).
	Extra []string
}

// HTTPServiceUnit returns a unit file running bin (testsvc) on
// 127.0.0.1:port with state directory dir; stdout goes to dir/out.log
// because a test manager has no journal.
func HTTPServiceUnit(name, bin string, port int, dir string, opts UnitOptions) string {
	typ := opts.Type
	if typ == "" {
		typ = "exec"
	}
	var b strings.Builder
	// No start rate limit: tests and the benchmark restart the same unit
	// more than systemd's default 5 times in 10 s, and start-limit-hit
	// would fail a round for a reason no real deploy meets.
	fmt.Fprintf(&b, "[Unit]\nDescription=rollout test service %s\nStartLimitIntervalSec=0\n\n[Service]\nType=%s\n", name, typ)
	exec := []string{bin, "-addr", "127.0.0.1:" + strconv.Itoa(port), "-dir", dir}
	exec = append(exec, opts.Args...)
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(exec, " "))
	if opts.Reload {
		b.WriteString("ExecReload=/bin/kill -HUP $MAINPID\n")
	}
	fmt.Fprintf(&b, "WorkingDirectory=%s\nStandardOutput=append:%s\nStandardError=inherit\n",
		dir, filepath.Join(dir, "out.log"))
	for _, line := range opts.Extra {
		b.WriteString(line + "\n")
	}
	return b.String()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// for a service that a test starts later. It is drawn at random below the
// kernel's ephemeral range (32768 and up), not from it: the tests'
// thousands of outgoing connections (health probes, load, ssh) take their
// source ports there, and one that took the port between this call and
// the service's start would make the service fail to listen.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatalf("no free port between 20000 and 32000")
	return 0
}

// ManagerPID is the manager's process id (0 for a manager we did not start).
func (m *Manager) ManagerPID() int {
	if m.own == nil {
		return 0
	}
	return m.own.PID()
}

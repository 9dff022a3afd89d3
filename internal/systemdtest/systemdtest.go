// Package systemdtest starts a real `systemd --user` manager for tests
// (see /work/shared/notes/systemd.md §5) and builds internal/testsvc to run
// under it.
//
// As root, Start runs the manager in a private mount namespace with a tmpfs
// on /run/systemd holding an empty /run/systemd/system (without it the
// manager refuses to run), and private XDG_RUNTIME_DIR and XDG_CONFIG_HOME
// directories, so several test binaries can each run their own manager at
// once. A non-root developer whose session already has a working user
// manager (DBUS_SESSION_BUS_ADDRESS) gets that one instead. When neither
// works the test is skipped, or fails when CI=true: CI must never skip.
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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// StartTimeout caps how long Start waits for the manager to be running.
const StartTimeout = 20 * time.Second

const managerBinary = "/usr/lib/systemd/systemd"

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

	ours    bool // started by us (else a developer's existing manager)
	baseDir string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returns
	logPath string
	cgroup  string // our cgroup's name under each hierarchy's root
	admin   *sdbus.Conn

	reloadMu sync.Mutex // serializes DaemonReload

	mu      sync.Mutex
	written []string // unit files written into a manager we do not own

	buildOnce   sync.Once
	testsvcPath string
	buildErr    error
}

// Start returns a running manager for t, stopped at t's cleanup. It skips t
// when no manager can be had, or fails it when CI=true.
func Start(t testing.TB) *Manager {
	t.Helper()
	m, stop, err := StartMain()
	Require(t, err)
	t.Cleanup(stop)
	return m
}

// Require applies the skip-or-fail policy to err from StartMain: nil does
// nothing; otherwise t fails under CI=true and is skipped elsewhere.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("systemdtest: no systemd user manager (CI=true, so this fails instead of skipping): %v", err)
	}
	t.Skipf("systemdtest: SKIPPING: no systemd user manager for this real-systemd test: %v "+
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
	if _, err := os.Stat(managerBinary); err != nil {
		return nil, nil, fmt.Errorf("systemd not installed: %w", err)
	}
	// A short base path: the bus socket path must fit in sun_path (108 bytes).
	base, err := os.MkdirTemp("", "sdt-")
	if err != nil {
		return nil, nil, err
	}
	m := &Manager{
		ours:       true,
		baseDir:    base,
		RuntimeDir: filepath.Join(base, "run"),
		ConfigHome: filepath.Join(base, "config"),
		logPath:    filepath.Join(base, "manager.log"),
		exited:     make(chan struct{}),
	}
	m.UnitDir = filepath.Join(m.ConfigHome, "systemd", "user")
	m.BusAddress = "unix:path=" + filepath.Join(m.RuntimeDir, "bus")
	m.PrivateAddress = "unix:path=" + filepath.Join(m.RuntimeDir, "systemd", "private")
	if err := os.MkdirAll(m.UnitDir, 0o755); err != nil {
		os.RemoveAll(base)
		return nil, nil, err
	}
	if err := os.Mkdir(m.RuntimeDir, 0o700); err != nil {
		os.RemoveAll(base)
		return nil, nil, err
	}
	logFile, err := os.Create(m.logPath)
	if err != nil {
		os.RemoveAll(base)
		return nil, nil, err
	}
	defer logFile.Close()

	// unshare (no --fork), sh's final exec and env all exec in place, so
	// the child's PID is the manager's. The manager inherits our
	// environment, minus any bus address that would point elsewhere.
	//
	// The shell first moves itself (and so the manager) into a cgroup of
	// its own in every writable hierarchy. Without that, a root user
	// manager that finds itself in /init.scope puts its units at global
	// paths (/session.slice/dbus.service, /app.slice/NAME.service), so
	// two managers share the cgroups of same-named units, and stopping
	// one manager kills the other's bus daemon (observed).
	script := `for h in /sys/fs/cgroup /sys/fs/cgroup/*; do ` +
		`[ -f "$h/cgroup.procs" ] && mkdir -p "$h/$3" 2>/dev/null && echo $$ > "$h/$3/cgroup.procs" 2>/dev/null; ` +
		`done; ` +
		`mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && ` +
		`exec env XDG_RUNTIME_DIR="$0" XDG_CONFIG_HOME="$1" DBUS_SESSION_BUS_ADDRESS="$2" ` + managerBinary + ` --user`
	m.cgroup = "rollout-" + filepath.Base(base)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script,
		m.RuntimeDir, m.ConfigHome, m.BusAddress, m.cgroup)
	cmd.Env = environWithout("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "NOTIFY_SOCKET")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Setsid as `setsid` would; Pdeathsig so that a test binary killed by
	// its timeout does not leave a manager (and its services) behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(base)
		return nil, nil, fmt.Errorf("starting the manager: %w", err)
	}
	m.cmd = cmd
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(m.exited)
	}()
	stop := func() { m.stopOwn() }

	if err := m.waitRunning(); err != nil {
		select {
		case <-m.exited:
			err = fmt.Errorf("%w; manager exited: %v; its output: %q (as root it needs CAP_SYS_ADMIN for the mount; "+
				"its own log goes to /dev/console)", err, waitErr, m.log())
		default:
		}
		stop()
		return nil, nil, err
	}
	m.StartDuration = time.Since(began)
	return m, stop, nil
}

// waitRunning polls every 20 ms until the bus socket exists and the
// manager's SystemState is running, for at most StartTimeout. It asks
// over the private socket, which also becomes the admin connection, so
// that the harness keeps working while a test kills the bus daemon.
func (m *Manager) waitRunning() error {
	deadline := time.Now().Add(StartTimeout)
	bus := strings.TrimPrefix(m.BusAddress, "unix:path=")
	private := strings.TrimPrefix(m.PrivateAddress, "unix:path=")
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			return errors.New("manager exited before it was running")
		default:
		}
		if _, err := os.Stat(bus); err != nil {
			last = fmt.Errorf("bus socket %s not there yet", bus)
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if _, err := os.Stat(private); err != nil {
			last = fmt.Errorf("private socket %s not there yet", private)
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if m.admin == nil {
			// The dial's ctx owns the connection, so not a short one.
			conn, err := dialManager(context.Background(), m.PrivateAddress)
			if err != nil {
				last = err
				time.Sleep(20 * time.Millisecond)
				continue
			}
			m.admin = conn
		}
		state, err := m.admin.GetManagerProperty("SystemState")
		if err != nil {
			last = err
		} else if state == `"running"` || state == `"degraded"` {
			// degraded: some unit of the inherited defaults failed;
			// the manager itself is up and takes jobs.
			return nil
		} else {
			last = fmt.Errorf("SystemState is %s", state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("manager not running after %s: %v", StartTimeout, last)
}

func (m *Manager) stopOwn() {
	if m.admin != nil {
		m.admin.Close()
	}
	if m.cmd != nil && m.cmd.Process != nil {
		// The manager stops its units (and the bus daemon) on SIGTERM.
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	}
	if m.cgroup != "" {
		removeCgroups(m.cgroup)
	}
	os.RemoveAll(m.baseDir)
}

// removeCgroups kills what is left in the manager's cgroup trees (only
// after a SIGKILL of the manager should anything be) and removes them,
// deepest first.
func removeCgroups(name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	roots = append(roots, "/sys/fs/cgroup/"+name)
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if b, err := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			// A cgroup whose killed processes are not yet reaped is busy
			// for a moment.
			for try := 0; try < 50 && os.Remove(dirs[i]) != nil && exists(dirs[i]); try++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (m *Manager) log() string {
	b, _ := os.ReadFile(m.logPath)
	return strings.TrimSpace(string(b))
}

// useExisting checks a developer's own user manager at addr.
func useExisting(addr string) (*Manager, func(), error) {
	began := time.Now()
	conn, err := dialManager(context.Background(), addr)
	if err != nil {
		return nil, nil, fmt.Errorf("DBUS_SESSION_BUS_ADDRESS=%q does not answer: %w", addr, err)
	}
	state, err := conn.GetManagerProperty("SystemState")
	if err != nil || (state != `"running"` && state != `"degraded"`) {
		conn.Close()
		return nil, nil, fmt.Errorf("user manager at %q: SystemState %s, %v", addr, state, err)
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
	return dialManager(ctx, m.BusAddress)
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
	fmt.Fprintf(&b, "[Unit]\nDescription=rollout test service %s\n\n[Service]\nType=%s\n", name, typ)
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dialManager connects go-systemd to the bus at address with EXTERNAL
// auth and Hello. The private socket is a direct connection to systemd, so
// Hello (a bus daemon method) is skipped there.
func dialManager(ctx context.Context, address string) (*sdbus.Conn, error) {
	direct := strings.HasSuffix(address, "/systemd/private")
	return sdbus.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial(address, dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			conn.Close()
			return nil, err
		}
		if !direct {
			if err := conn.Hello(); err != nil {
				conn.Close()
				return nil, err
			}
		}
		return conn, nil
	})
}

func environWithout(names ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, name := range names {
			if strings.HasPrefix(kv, name+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// ManagerPID is the manager's process id (0 for a manager we did not start).
func (m *Manager) ManagerPID() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

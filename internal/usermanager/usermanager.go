// Package usermanager starts and stops a private `systemd --user` manager,
// for machines without a booted systemd (containers, CI) where rollout's
// tests and `rollout demo` still want real units.
//
// As root, Start runs the manager in a private mount namespace with a tmpfs
// on /run/systemd holding an empty /run/systemd/system (without it the
// manager refuses to run), with private XDG_RUNTIME_DIR and XDG_CONFIG_HOME
// directories and a cgroup of its own, so that several managers can run at
// once without touching each other or the host's.
package usermanager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/rollout-sh/rollout/internal/busdial"
)

// Binary is the systemd manager binary Start runs.
const Binary = "/usr/lib/systemd/systemd"

// DefaultStartTimeout caps how long Start waits for the manager to run.
const DefaultStartTimeout = 20 * time.Second

// maxSocketPath is sun_path's size minus its NUL: a longer bus socket path
// cannot be bound, and the manager would fail without saying why.
const maxSocketPath = 107

// Options shape Start.
type Options struct {
	// Parent is the directory the manager's base directory is made in
	// ("" = the system temp dir). Keep it short: socket paths under it
	// must fit in 107 bytes.
	Parent string
	// Prefix names the base directory (default "sdm-").
	Prefix string
	// StartTimeout caps the wait for "running" (default DefaultStartTimeout).
	StartTimeout time.Duration
	// Detach lets the manager outlive the caller (`rollout demo --keep`);
	// by default it gets SIGTERM when the caller dies.
	Detach bool
}

// Manager is a private systemd user manager started by Start.
type Manager struct {
	// BusAddress is the manager's D-Bus session bus, "unix:path=.../bus"
	// (there only when dbus-user-session is installed).
	BusAddress string
	// PrivateAddress is systemd's own socket, "unix:path=.../systemd/private":
	// no bus daemon, so clients must not send Hello. Always there.
	PrivateAddress string
	BaseDir        string // holds everything below; removed by Stop
	RuntimeDir     string // XDG_RUNTIME_DIR
	ConfigHome     string // XDG_CONFIG_HOME
	UnitDir        string // $XDG_CONFIG_HOME/systemd/user
	// StartDuration is how long the manager took to reach "running"
	// (measured 0.19–0.27 s here, 20 ms polls).
	StartDuration time.Duration

	// Admin is a connection over the private socket, open until Stop: it
	// keeps working when the bus daemon is killed or restarted.
	Admin *sdbus.Conn

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returns
	waitErr error
	logPath string
	cgroup  string // our cgroup's name under each hierarchy's root
}

// Cgroup is the name of the manager's own cgroup under each hierarchy's
// root (/sys/fs/cgroup/NAME), for a person cleaning up by hand.
func (m *Manager) Cgroup() string { return m.cgroup }

// Start starts a private manager. It needs root (CAP_SYS_ADMIN for the
// mount namespace). Call Stop when done, also after an error in between.
func Start(opts Options) (*Manager, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a private systemd user manager needs root (to unshare a mount namespace)")
	}
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("systemd not installed: %w", err)
	}
	if opts.Prefix == "" {
		opts.Prefix = "sdm-"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	base, err := os.MkdirTemp(opts.Parent, opts.Prefix)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		BaseDir:    base,
		RuntimeDir: filepath.Join(base, "run"),
		ConfigHome: filepath.Join(base, "config"),
		logPath:    filepath.Join(base, "manager.log"),
		exited:     make(chan struct{}),
	}
	m.UnitDir = filepath.Join(m.ConfigHome, "systemd", "user")
	m.BusAddress = "unix:path=" + filepath.Join(m.RuntimeDir, "bus")
	private := filepath.Join(m.RuntimeDir, "systemd", "private")
	m.PrivateAddress = "unix:path=" + private
	if len(private) > maxSocketPath {
		os.RemoveAll(base)
		return nil, fmt.Errorf("socket path %s is longer than %d bytes; start the manager under a shorter directory", private, maxSocketPath)
	}
	if err := os.MkdirAll(m.UnitDir, 0o755); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	if err := os.Mkdir(m.RuntimeDir, 0o700); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	logFile, err := os.Create(m.logPath)
	if err != nil {
		os.RemoveAll(base)
		return nil, err
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
		`exec env XDG_RUNTIME_DIR="$0" XDG_CONFIG_HOME="$1" DBUS_SESSION_BUS_ADDRESS="$2" ` + Binary + ` --user`
	m.cgroup = "rollout-" + filepath.Base(base)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script,
		m.RuntimeDir, m.ConfigHome, m.BusAddress, m.cgroup)
	cmd.Env = environWithout("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "NOTIFY_SOCKET")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Setsid so that a Ctrl-C on the terminal reaches only us (we stop
	// the manager in order); Pdeathsig so that a caller killed outright
	// (a test binary's timeout, kill -9) does not leave a manager and
	// its services behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if opts.Detach {
		cmd.SysProcAttr.Pdeathsig = 0
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(base)
		return nil, fmt.Errorf("starting the manager: %w", err)
	}
	m.cmd = cmd
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()

	if err := m.waitRunning(opts.StartTimeout); err != nil {
		select {
		case <-m.exited:
			err = fmt.Errorf("%w; manager exited: %v; its output: %q (as root it needs CAP_SYS_ADMIN for the mount; "+
				"its own log goes to /dev/console)", err, m.waitErr, m.log())
		default:
		}
		m.Stop()
		return nil, err
	}
	m.StartDuration = time.Since(began)
	return m, nil
}

// waitRunning polls every 20 ms until the sockets exist and the manager's
// SystemState is running, for at most timeout. It asks over the private
// socket, which also becomes the Admin connection.
func (m *Manager) waitRunning(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
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
		if m.Admin == nil {
			// The dial's ctx owns the connection, so not a short one.
			conn, err := Dial(context.Background(), m.PrivateAddress)
			if err != nil {
				last = err
				time.Sleep(20 * time.Millisecond)
				continue
			}
			m.Admin = conn
		}
		ok, err := running(m.Admin)
		if ok {
			return nil
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("manager not running after %s: %v", timeout, last)
}

// running reports whether the manager behind conn takes jobs.
func running(conn *sdbus.Conn) (bool, error) {
	state, err := conn.GetManagerProperty("SystemState")
	if err != nil {
		return false, err
	}
	// degraded: some unit of the inherited defaults failed; the manager
	// itself is up and takes jobs.
	if state == `"running"` || state == `"degraded"` {
		return true, nil
	}
	return false, fmt.Errorf("SystemState is %s", state)
}

// PID is the manager's process id.
func (m *Manager) PID() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
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

// Stop stops the manager (which stops its units and its bus daemon), kills
// whatever is left in its cgroups and removes BaseDir. It is safe to call
// more than once.
func (m *Manager) Stop() {
	if m.Admin != nil {
		m.Admin.Close()
		m.Admin = nil
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
	if m.BaseDir != "" {
		os.RemoveAll(m.BaseDir)
	}
}

// Probe dials the user manager at address and checks that it is running;
// the caller closes the connection it returns.
func Probe(address string, timeout time.Duration) (*sdbus.Conn, error) {
	type result struct {
		conn *sdbus.Conn
		err  error
	}
	// godbus's Dial, Auth and Hello take no deadline, so a socket that
	// accepts but never answers would hang the caller.
	ch := make(chan result, 1)
	go func() {
		conn, err := Dial(context.Background(), address)
		if err == nil {
			if ok, rerr := running(conn); !ok {
				conn.Close()
				conn, err = nil, rerr
			}
		}
		ch <- result{conn, err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-time.After(timeout):
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("%s did not answer within %s", address, timeout)
	}
}

// SessionBusAddress returns where the caller's own user manager's bus would
// be: $DBUS_SESSION_BUS_ADDRESS, else /run/user/UID/bus when that socket
// exists, else "".
func SessionBusAddress(getenv func(string) string) string {
	if addr := getenv("DBUS_SESSION_BUS_ADDRESS"); addr != "" {
		return addr
	}
	path := filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "bus")
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		return "unix:path=" + path
	}
	return ""
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

// Dial connects go-systemd to the bus at address with EXTERNAL auth and
// Hello; ctx owns the connection's lifetime. The private socket is a
// direct connection to systemd, so Hello (a bus daemon method) is skipped
// there.
func Dial(ctx context.Context, address string) (*sdbus.Conn, error) {
	return sdbus.NewConnection(func() (*dbus.Conn, error) { return busdial.Dial(ctx, address) })
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

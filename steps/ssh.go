package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rollout-sh/rollout/internal/busdial"
	"github.com/rollout-sh/rollout/planner"
)

// SSHConfig tunes how hosts are reached. Zero fields take the defaults.
type SSHConfig struct {
	// Program is the ssh client (default "ssh" from PATH): the user's own,
	// with their ~/.ssh/config, agent, ProxyJump and known_hosts.
	Program string
	// ConnectTimeout bounds a new connection (default 10s); ServerAlive
	// is the keep-alive interval, three of which unanswered drop the
	// connection (default 5s): together they bound a dead host.
	ConnectTimeout time.Duration
	ServerAlive    time.Duration
	// CallTimeout and JobTimeout are the systemd backend's (ConnectOptions).
	CallTimeout time.Duration
	JobTimeout  time.Duration
}

// HostSet opens the hosts of a run, one SSH per host, and closes them.
// Every ssh to one host shares one connection (ssh's ControlMaster): the
// first use of a host opens it, and D-Bus, rsync and commands all reuse it.
type HostSet struct {
	cfg SSHConfig
	ctx context.Context
	dir string // control sockets

	mu    sync.Mutex
	hosts map[string]*SSH
	// warming counts StartWarming's connections still being opened;
	// Close waits for them so that none opens after it.
	warming sync.WaitGroup
}

// NewHostSet returns an empty set. ctx owns the hosts' systemd
// connections for the set's whole life: pass a long-lived one.
func NewHostSet(ctx context.Context, cfg SSHConfig) (*HostSet, error) {
	if cfg.Program == "" {
		cfg.Program = "ssh"
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.ServerAlive <= 0 {
		cfg.ServerAlive = 5 * time.Second
	}
	// A short directory of our own: a unix socket path holds at most 107
	// bytes, and nobody else may connect through our sockets.
	dir, err := os.MkdirTemp("", "rollout-ssh-")
	if err != nil {
		return nil, fmt.Errorf("directory for ssh control sockets: %w", err)
	}
	return &HostSet{cfg: cfg, ctx: ctx, dir: dir, hosts: map[string]*SSH{}}, nil
}

// Get returns the host for h, the same one for every call with its name.
func (s *HostSet) Get(h *planner.Host) (Host, error) {
	if h == nil {
		return nil, errors.New("no host")
	}
	return s.SSH(h), nil
}

// SSH returns the *SSH for h.
func (s *HostSet) SSH(h *planner.Host) *SSH {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x, ok := s.hosts[h.Name]; ok {
		return x
	}
	x := &SSH{host: h, cfg: s.cfg, control: filepath.Join(s.dir, h.Name)}
	x.sd = &hostBackend{host: x, Backend: &lazyBackend{host: h.Name, connect: func() (Backend, error) {
		return Connect(s.ctx, ConnectOptions{
			Dial:        x.dialBus,
			Describe:    "systemd on host " + h.Name,
			CallTimeout: s.cfg.CallTimeout,
			JobTimeout:  s.cfg.JobTimeout,
		})
	}}}
	s.hosts[h.Name] = x
	return x
}

// Warm opens every host's connections at once: the ssh master, then its
// systemd connection, and returns when all are open or failed. Failures
// are not reported here: each step on the host reports its own, naming
// the host.
func (s *HostSet) Warm(hosts []*planner.Host) {
	s.StartWarming(hosts)
	s.warming.Wait()
}

// StartWarming opens every host's connections at once, in the
// background, and returns at once. A run calls it first, so that the
// hosts' first connections (seconds each through a jump host) overlap
// each other and whatever the run does meanwhile (its lock, the host
// locks, which need only the ssh master) instead of adding up. A caller
// that needs a connection waits for it where it uses it (the master and
// the systemd connection are each opened once, under a lock).
func (s *HostSet) StartWarming(hosts []*planner.Host) {
	for _, h := range hosts {
		x := s.SSH(h)
		s.warming.Add(1)
		go func() {
			defer s.warming.Done()
			x.ensureMaster()
			if lb, ok := x.sd.Backend.(*lazyBackend); ok {
				lb.get()
			}
		}()
	}
}

// Close closes every host's systemd connection and ssh connection and
// removes the control sockets.
func (s *HostSet) Close() error {
	s.warming.Wait()
	s.mu.Lock()
	hosts := s.hosts
	s.hosts = map[string]*SSH{}
	s.mu.Unlock()
	var errs []error
	for _, h := range hosts {
		errs = append(errs, h.Close())
	}
	errs = append(errs, os.RemoveAll(s.dir))
	return errors.Join(errs...)
}

// SSH is a host reached with the ssh binary. All its sessions go through
// one master connection that it starts at first use and ends in Close; the
// master dies with rollout (parent-death signal), so a killed controller
// leaves no connection, and no lock held by one, behind.
type SSH struct {
	host    *planner.Host
	cfg     SSHConfig
	control string
	sd      *hostBackend

	mu     sync.Mutex
	master *exec.Cmd
	exited chan struct{} // closed when master exits
	stderr *bytes.Buffer
	// forward is the local end of the bus socket forwarded over the
	// current master ("" before it is set up; each master has its own);
	// noForward records that the host refused it.
	forward   string
	noForward bool
	// noMasterUntil: the last master could not start (the host did not
	// answer, or refused us); until then no new one is tried.
	noMasterUntil time.Time
}

func (x *SSH) Name() string { return x.host.Name }

func (x *SSH) Systemd() Backend { return x.sd }

// baseArgs are the ssh options of every session: the plan's ssh_args
// first (for -o options ssh keeps the first value it sees, so the plan
// can override ours), then connection sharing and the time limits.
func (x *SSH) baseArgs() []string {
	args := slices.Clone(x.host.SSHArgs)
	args = append(args,
		"-o", "BatchMode=yes",
		"-o", "ControlPath="+x.control,
		"-o", "ConnectTimeout="+strconv.Itoa(int(math.Ceil(x.cfg.ConnectTimeout.Seconds()))),
		"-o", "ServerAliveInterval="+strconv.Itoa(int(math.Ceil(x.cfg.ServerAlive.Seconds()))),
		"-o", "ServerAliveCountMax=3",
	)
	if x.host.Port != 0 {
		args = append(args, "-p", strconv.Itoa(x.host.Port))
	}
	if x.host.User != "" {
		args = append(args, "-l", x.host.User)
	}
	return append(args, "-T", "-x")
}

// ensureMaster starts the shared connection unless it is up. A master
// that cannot start is not an error here: each session then connects on
// its own (ControlMaster=no falls back to a direct connection) and
// reports what went wrong itself.
//
// Nor is it tried again for ConnectTimeout: on a host that does not
// answer, every caller would otherwise wait its own ConnectTimeout for a
// master, one after the other under x.mu, before its session waits
// another one: a D-Bus dial (two connections, each trying the forwarded
// socket, then the bridge) ran into its CallTimeout, and Close waited
// for the attempts still queued after the run had ended.
func (x *SSH) ensureMaster() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.master != nil {
		select {
		case <-x.exited:
			x.master = nil
		default:
			return
		}
	}
	if time.Now().Before(x.noMasterUntil) {
		return
	}
	x.forward = ""
	args := append(x.baseArgs(), "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "--", x.host.Address)
	cmd := exec.Command(x.cfg.Program, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// The master ends with rollout, even after a SIGKILL: the sessions
	// over it (a host lock among them) end, and the host sees the
	// controller is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	x.master, x.exited, x.stderr = cmd, exited, &stderr
	// Wait until the control socket exists (the master is authenticated)
	// or the master gives up; ConnectTimeout bounds the latter.
	deadline := time.Now().Add(x.cfg.ConnectTimeout + 2*time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(x.control); err == nil {
			return
		}
		select {
		case <-exited:
			x.master = nil
			x.noMasterUntil = time.Now().Add(x.cfg.ConnectTimeout)
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Close ends the master connection.
func (x *SSH) Close() error {
	err := x.sd.Close()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.master != nil {
		x.master.Process.Signal(syscall.SIGTERM)
		select {
		case <-x.exited:
		case <-time.After(5 * time.Second):
			x.master.Process.Kill()
			<-x.exited
		}
		x.master = nil
	}
	return err
}

// command builds the ssh command that runs remote (already one shell
// line) on the host.
func (x *SSH) command(ctx context.Context, remote string) *exec.Cmd {
	x.ensureMaster()
	args := append(x.baseArgs(), "-o", "ControlMaster=no", "--", x.host.Address, remote)
	cmd := exec.CommandContext(ctx, x.cfg.Program, args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// ShellQuote quotes s for a POSIX shell: single quotes around it, each
// single quote inside written as '\”. Every byte then stands for itself.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RemoteLine is the one shell line ssh hands to the host's shell for c:
// every argv element, the directory and the environment quoted once, here.
// timeout, when positive, makes the host kill the command's process group
// at the deadline (coreutils timeout), since a dropped ssh session does
// not stop a command on the far side.
func RemoteLine(c Cmd, timeout time.Duration) string {
	var b strings.Builder
	if c.Dir != "" {
		b.WriteString("cd -- " + ShellQuote(c.Dir) + " && ")
	}
	b.WriteString("exec")
	if len(c.Env) > 0 {
		b.WriteString(" env")
		for _, kv := range c.Env {
			b.WriteString(" " + ShellQuote(kv))
		}
	}
	if timeout > 0 {
		secs := int(math.Ceil(timeout.Seconds()))
		fmt.Fprintf(&b, " timeout -k 2 %d", max(secs, 1))
	}
	// `--` is not needed: exec and env take the first word that is not
	// an option or an assignment as the program; a program name starting
	// with "-" or holding "=" is refused by the planner's argv check.
	for _, a := range c.Argv {
		b.WriteString(" " + ShellQuote(a))
	}
	return b.String()
}

func (x *SSH) Run(ctx context.Context, c Cmd) error {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return errors.New("empty command")
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	cmd := x.command(ctx, RemoteLine(c, timeout))
	cmd.Stdin = c.Stdin
	cmd.Stdout = c.Stdout
	cmd.Stderr = c.Stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 255 {
		return &HostError{Host: x.host.Name, Err: err}
	}
	return err
}

// HostError is ssh's own failure (exit 255: no connection, host down,
// authentication refused), as opposed to the remote command's.
type HostError struct {
	Host string
	Err  error
}

func (e *HostError) Error() string {
	return fmt.Sprintf("host %s unreachable over ssh (%v)", e.Host, e.Err)
}

func (e *HostError) Unwrap() error { return e.Err }

// script runs a POSIX sh script on the host with args ($1, ...), and
// returns its stdout; stderr goes into the error.
func (x *SSH) script(ctx context.Context, stdin io.Reader, script string, args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	argv := append([]string{"sh", "-c", script, "sh"}, args...)
	err := x.Run(ctx, Cmd{Argv: argv, Stdin: stdin, Stdout: &out, Stderr: &errb})
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if strings.Contains(msg, "No such file or directory") {
			return out.Bytes(), fmt.Errorf("%s: %w", msg, fs.ErrNotExist)
		}
		if msg != "" {
			return out.Bytes(), fmt.Errorf("%w: %s", err, msg)
		}
		return out.Bytes(), err
	}
	return out.Bytes(), nil
}

// parseStat reads `stat -c '%f %u %g'`: the raw mode in hex, uid, gid.
func parseStat(line string) (FileInfo, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return FileInfo{}, fmt.Errorf("unexpected stat output %q", line)
	}
	raw, err1 := strconv.ParseUint(f[0], 16, 32)
	uid, err2 := strconv.Atoi(f[1])
	gid, err3 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return FileInfo{}, fmt.Errorf("unexpected stat output %q", line)
	}
	mode := fs.FileMode(raw & 0o777)
	if raw&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if raw&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if raw&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	switch raw & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFREG:
	default:
		mode |= fs.ModeIrregular
	}
	return FileInfo{Mode: mode, UID: uid, GID: gid}, nil
}

func (x *SSH) Stat(ctx context.Context, path string) (FileInfo, error) {
	out, err := x.script(ctx, nil, `exec stat -c '%f %u %g' -- "$1"`, path)
	if err != nil {
		return FileInfo{}, err
	}
	return parseStat(string(out))
}

func (x *SSH) Realpath(ctx context.Context, path string) (string, error) {
	out, err := x.script(ctx, nil, `exec readlink -e -- "$1"`, path)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

// ReadFile reads the file and its mode and owner in one round trip.
func (x *SSH) ReadFile(ctx context.Context, path string) ([]byte, FileInfo, error) {
	out, err := x.script(ctx, nil, `stat -L -c '%f %u %g' -- "$1" && exec cat -- "$1"`, path)
	if err != nil {
		return nil, FileInfo{}, err
	}
	line, data, ok := bytes.Cut(out, []byte("\n"))
	if !ok {
		return nil, FileInfo{}, fmt.Errorf("unexpected output reading %s", path)
	}
	info, err := parseStat(string(line))
	return data, info, err
}

// writeScript writes stdin to a temporary file beside $1, gives it owner
// $2 (empty: leave it) and mode $3, and renames it over $1: a crash never
// leaves a half-written file, and a symlink at $1 is replaced.
const writeScript = `set -e
t=$(mktemp "$(dirname -- "$1")/.$(basename -- "$1").tmp-XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat >"$t"
[ -z "$2" ] || chown -- "$2" "$t"
chmod -- "$3" "$t"
mv -f -- "$t" "$1"`

func (x *SSH) WriteFile(ctx context.Context, path string, data []byte, info FileInfo) error {
	owner := ""
	if info.UID >= 0 && info.GID >= 0 {
		owner = fmt.Sprintf("%d:%d", info.UID, info.GID)
	}
	mode := fmt.Sprintf("%o", uint32(info.Mode.Perm())|unixSpecial(info.Mode))
	_, err := x.script(ctx, bytes.NewReader(data), writeScript, path, owner, mode)
	return err
}

func unixSpecial(m fs.FileMode) uint32 {
	var v uint32
	if m&fs.ModeSetuid != 0 {
		v |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		v |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		v |= syscall.S_ISVTX
	}
	return v
}

func (x *SSH) RemoveAll(ctx context.Context, path string) error {
	if path == "" || path == "/" {
		return fmt.Errorf("refusing to remove %q", path)
	}
	_, err := x.script(ctx, nil, `exec rm -rf -- "$1"`, path)
	return err
}

// Upload runs rsync on the controller with ssh as its remote shell, over
// the host's shared connection.
func (x *SSH) Upload(ctx context.Context, opts []string, src, dst string, out io.Writer) error {
	x.ensureMaster()
	shell := []string{x.cfg.Program}
	shell = append(shell, x.baseArgs()...)
	shell = append(shell, "-o", "ControlMaster=no")
	quoted := make([]string, len(shell))
	for i, a := range shell {
		// rsync splits -e on spaces and honours quotes.
		quoted[i] = ShellQuote(a)
	}
	argv := []string{"rsync", "-a", "-e", strings.Join(quoted, " ")}
	argv = append(argv, opts...)
	// --protect-args (-s): rsync sends the remote path without a shell
	// reading it, so spaces and quotes in it stay as they are.
	argv = append(argv, "-s", dirArg(src), x.host.Address+":"+dirArg(dst))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = 5 * time.Second
	return cmd.Run()
}

// dialBus connects to the host's bus. It first tries the bus socket
// forwarded over the master connection (what `ssh -L local:/remote`
// does): no remote process, no remote shell, and each message crosses
// two processes fewer than through a bridge. A host that refuses the
// forwarding (sshd's AllowStreamLocalForwarding no, DisableForwarding)
// or whose bus is not a socket file is reached through
// systemd-stdio-bridge, as systemctl -H does.
func (x *SSH) dialBus(ctx context.Context) (*dbus.Conn, error) {
	conn, err := x.dialForwarded(ctx)
	if err == nil {
		return conn, nil
	}
	return x.dialBridge(ctx)
}

// errNoForward: the bus is reached through the bridge only.
var errNoForward = errors.New("no forwarded bus socket")

// busSocketPath is the host's bus as a socket file, "" when its address
// is anything else (an abstract socket, several addresses, escapes).
func busSocketPath(bus string) string {
	if bus == "" {
		// systemd-stdio-bridge's default: the system bus.
		return "/run/dbus/system_bus_socket"
	}
	p, ok := strings.CutPrefix(bus, "unix:path=")
	if !ok || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, ",;%") {
		return ""
	}
	return p
}

// dialForwarded connects through the host's bus socket forwarded to a
// socket beside the control socket, set up once per master connection.
func (x *SSH) dialForwarded(ctx context.Context) (*dbus.Conn, error) {
	remote := busSocketPath(x.host.SystemdBus)
	if remote == "" {
		return nil, errNoForward
	}
	x.ensureMaster()
	x.mu.Lock()
	if x.master == nil || x.noForward {
		x.mu.Unlock()
		return nil, errNoForward
	}
	if x.forward == "" {
		// Beside the control socket, in the set's own directory (0700,
		// os.MkdirTemp): whoever can connect to the local end talks to
		// the host's bus as the ssh user, so nobody else may.
		local := x.control + ".bus"
		os.Remove(local)
		args := append(x.baseArgs(), "-O", "forward", "-L", local+":"+remote, "--", x.host.Address)
		cmd := exec.CommandContext(ctx, x.cfg.Program, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			x.noForward = true
			x.mu.Unlock()
			return nil, fmt.Errorf("%w: ssh -O forward: %v: %s", errNoForward, err, strings.TrimSpace(string(out)))
		}
		x.forward = local
	}
	local := x.forward
	x.mu.Unlock()
	c, err := net.DialTimeout("unix", local, x.cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	conn, err := dbus.NewConn(c, dbus.WithContext(ctx))
	if err != nil {
		c.Close()
		return nil, err
	}
	if conn, err = busdial.Setup(conn, false); err != nil {
		// The master took the connection but the host closed the
		// channel: it does not forward sockets, and the bridge is used
		// from now on. Unless the master itself died meanwhile: that is
		// the host going away, not a refusal, and the next connection
		// tries the forwarding again.
		x.mu.Lock()
		if x.master != nil {
			select {
			case <-x.exited:
			default:
				x.noForward = true
			}
		}
		x.mu.Unlock()
		return nil, err
	}
	return conn, nil
}

// dialBridge runs systemd-stdio-bridge on the host over ssh and makes a
// godbus connection over its stdin and stdout (godbus has no unixexec:
// transport); systemctl -H does the same.
func (x *SSH) dialBridge(ctx context.Context) (*dbus.Conn, error) {
	remote := []string{"systemd-stdio-bridge"}
	if x.host.SystemdBus != "" {
		remote = append(remote, "-p"+x.host.SystemdBus)
	}
	cmd := x.command(context.Background(), RemoteLine(Cmd{Argv: remote}, 0))
	// stderr through a pipe of our own, read by our own goroutine: the
	// ssh client hands its descriptors to the master connection, which
	// keeps them open after the client is killed, and exec's copying
	// goroutine would hold Close up for WaitDelay.
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = errW
	stderr := &lockedBuffer{}
	go func() { io.Copy(stderr, errR); errR.Close() }()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		errW.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		errW.Close()
		return nil, err
	}
	err = cmd.Start()
	errW.Close()
	if err != nil {
		return nil, fmt.Errorf("start ssh: %w", err)
	}
	rwc := &pipeConn{cmd: cmd, r: stdout, w: stdin}
	conn, err := dbus.NewConn(rwc, dbus.WithContext(ctx))
	if err != nil {
		rwc.Close()
		return nil, err
	}
	conn, err = busdial.Setup(conn, false)
	if err != nil {
		rwc.Close()
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%w (ssh: %s)", err, msg)
		}
		return nil, err
	}
	return conn, nil
}

// pipeConn is a child's stdout and stdin as one connection; Close ends
// the child and waits for it.
type pipeConn struct {
	cmd  *exec.Cmd
	r    io.ReadCloser
	w    io.WriteCloser
	once sync.Once
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }

func (p *pipeConn) Close() error {
	p.once.Do(func() {
		p.w.Close()
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	return nil
}

// lazyBackend connects on first use, so that building a run's steps needs
// no connection, and names the host when it cannot.
type lazyBackend struct {
	host    string
	connect func() (Backend, error)

	mu     sync.Mutex
	sd     Backend
	closed bool
}

func (l *lazyBackend) get() (Backend, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("systemd backend is closed")
	}
	if l.sd != nil {
		return l.sd, nil
	}
	sd, err := l.connect()
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", l.host, err)
	}
	l.sd = sd
	return sd, nil
}

func (l *lazyBackend) DaemonReload(ctx context.Context) error {
	sd, err := l.get()
	if err != nil {
		return err
	}
	return l.named(sd.DaemonReload(ctx))
}

func (l *lazyBackend) Do(ctx context.Context, op Op, unit string) error {
	sd, err := l.get()
	if err != nil {
		return err
	}
	return l.named(sd.Do(ctx, op, unit))
}

func (l *lazyBackend) Status(ctx context.Context, unit string) (UnitState, error) {
	sd, err := l.get()
	if err != nil {
		return UnitState{}, err
	}
	st, err := sd.Status(ctx, unit)
	return st, l.named(err)
}

// named adds the host to an error that does not say it yet.
func (l *lazyBackend) named(err error) error {
	if err == nil || strings.Contains(err.Error(), "host "+l.host) {
		return err
	}
	return fmt.Errorf("host %s: %w", l.host, err)
}

func (l *lazyBackend) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.sd != nil {
		return l.sd.Close()
	}
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

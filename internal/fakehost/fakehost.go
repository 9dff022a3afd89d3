// Package fakehost starts stand-ins for remote machines on this one, for the
// fleet tests: each has a real sshd, a real private `systemd --user` manager
// (bus at /srv/run/bus, unit files in /srv/cfg/systemd/user) and a private
// tmpfs at /srv, so the same path on two hosts holds different files. It runs
// fakehost.sh (a copy of ../shared/tools/fakehost) and needs root and
// openssh-server; scripts/test.sh installs it.
//
// When a host cannot be started the test is skipped, or fails under
// CI=true: CI must never skip.
package fakehost

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed fakehost.sh
var script []byte

// Host is one running fake host, reachable as root@127.0.0.1:Port with the
// key Key.
type Host struct {
	Name string
	Port int
	Key  string
	pgid int
	// cgroup is the name of the host's cgroup directories
	// (fakehost-NAME-XXXX), read from its sshd once it runs.
	cgroup string
}

var (
	keyMu  sync.Mutex
	keyDir string
)

// keys returns the directory holding the client key and the script shared
// by every host of this test binary. The key is made here, once, under keyMu: the
// script makes it when missing, and two hosts started at once would both
// run ssh-keygen on the same file, the second failing on the first's.
func keys() (string, error) {
	keyMu.Lock()
	defer keyMu.Unlock()
	if keyDir != "" {
		return keyDir, nil
	}
	dir, err := os.MkdirTemp("", "fakehost-keys-")
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "client")).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("ssh-keygen: %w: %s", err, strings.TrimSpace(string(out)))
	}
	// Written once too: rewriting it for each host would truncate it
	// under a sh that is reading it for another.
	if err := os.WriteFile(filepath.Join(dir, "fakehost.sh"), script, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	keyDir = dir
	return dir, nil
}

// Options change how a host is made.
type Options struct {
	// SSHDConfig are lines appended to the host's sshd_config, e.g.
	// "DisableForwarding yes". sshd keeps the first value of most
	// keywords: these add settings, they do not override the script's.
	SSHDConfig []string
}

// Start starts a host named name, stopped at t's cleanup.
func Start(t testing.TB, name string) *Host {
	t.Helper()
	return StartWith(t, name, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, name string, opts Options) *Host {
	t.Helper()
	h, err := StartHostWith(name, opts)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fakehost %s: %v", name, err)
		}
		t.Skipf("fakehost %s: %v (needs root and openssh-server)", name, err)
	}
	t.Cleanup(h.Stop)
	return h
}

// StartHost starts a host; the caller stops it.
func StartHost(name string) (*Host, error) {
	return StartHostWith(name, Options{})
}

// StartHostWith is StartHost with options.
func StartHostWith(name string, opts Options) (*Host, error) {
	for _, l := range opts.SSHDConfig {
		if strings.ContainsAny(l, "\n\r") {
			return nil, fmt.Errorf("sshd_config line %q holds a newline", l)
		}
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("not root")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		return nil, errors.New("no /usr/sbin/sshd")
	}
	dir, err := keys()
	if err != nil {
		return nil, err
	}
	sh := filepath.Join(dir, "fakehost.sh")
	var lastErr error
	for try := 0; try < 3; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("sh", sh, name, strconv.Itoa(port), dir)
		cmd.Env = os.Environ()
		if len(opts.SSHDConfig) > 0 {
			cmd.Env = append(cmd.Env, "FAKEHOST_SSHD_CONFIG="+strings.Join(opts.SSHDConfig, "\n"))
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("fakehost.sh: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		pgid, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			return nil, fmt.Errorf("fakehost.sh printed %q", out)
		}
		h := &Host{Name: name, Port: port, Key: filepath.Join(dir, "client"), pgid: pgid}
		if lastErr = h.waitReady(20 * time.Second); lastErr == nil {
			h.cgroup = cgroupOf(pgid)
			return h, nil
		}
		h.Stop() // the port may have been taken between our probe and sshd
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until ssh works and the host's manager is running.
func (h *Host) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		out, err := h.Run("test -S /srv/run/bus && systemctl --user is-system-running")
		if err == nil && strings.TrimSpace(out) == "running" {
			return nil
		}
		last = fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("host %s not ready after %s: %v", h.Name, limit, last)
}

// SSHArgs are the ssh options that reach the host without asking about
// its key.
func (h *Host) SSHArgs() []string {
	return []string{"-i", h.Key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}
}

// HCL is a host block for the plan language.
func (h *Host) HCL(tags ...string) string {
	q := make([]string, len(tags))
	for i, t := range tags {
		q[i] = strconv.Quote(t)
	}
	args := make([]string, 0, 8)
	for _, a := range h.SSHArgs() {
		args = append(args, strconv.Quote(a))
	}
	return fmt.Sprintf(`host %q {
  address     = "127.0.0.1"
  user        = "root"
  port        = %d
  ssh_args    = [%s]
  systemd_bus = "unix:path=/srv/run/bus"
  tags        = [%s]
}
`, h.Name, h.Port, strings.Join(args, ", "), strings.Join(q, ", "))
}

// Run runs a shell line on the host and returns its combined output.
func (h *Host) Run(line string) (string, error) {
	args := append(h.SSHArgs(), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", strconv.Itoa(h.Port), "-T", "root@127.0.0.1", line)
	out, err := exec.Command("ssh", args...).CombinedOutput()
	return string(out), err
}

// MustRun is Run that fails t on error.
// Stdout runs a shell line on the host and returns its stdout only: the
// login shell's own chatter on stderr (a profile that warns) is not part
// of what the line printed.
func (h *Host) Stdout(t testing.TB, line string) string {
	t.Helper()
	args := append(h.SSHArgs(), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", strconv.Itoa(h.Port), "-T", "root@127.0.0.1", line)
	cmd := exec.Command("ssh", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("on %s: %s: %v\n%s%s", h.Name, line, err, out, stderr.String())
	}
	return string(out)
}

func (h *Host) MustRun(t testing.TB, line string) string {
	t.Helper()
	out, err := h.Run(line)
	if err != nil {
		t.Fatalf("on %s: %s: %v\n%s", h.Name, line, err, out)
	}
	return out
}

// Freeze stops (SIGSTOP) every process of the host: its sshd, the
// sessions' sshd children (each in a session of its own), its manager and
// its units. The host goes silent without going down: its TCP connections
// stay open, the kernel still acknowledges what is sent, nothing answers.
// Thaw undoes it; Stop thaws first.
func (h *Host) Freeze() {
	h.signalAll(syscall.SIGSTOP)
}

// Thaw continues (SIGCONT) every process of the host.
func (h *Host) Thaw() {
	h.signalAll(syscall.SIGCONT)
}

// signalAll sends sig to the host's process group and to every process
// in its cgroups; three rounds catch what forked meanwhile.
func (h *Host) signalAll(sig syscall.Signal) {
	if h.pgid <= 0 {
		return
	}
	for round := 0; round < 3; round++ {
		syscall.Kill(-h.pgid, sig)
		for _, pid := range cgroupProcs(h.cgroup) {
			syscall.Kill(pid, sig)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Processes returns the command lines (arguments joined by spaces) of
// every process of the host, read from its cgroups on this machine: the
// hosts share the machine's process table, so a pgrep on a host would
// see every host's processes, and other tests'.
func (h *Host) Processes() []string {
	var cmds []string
	for _, pid := range cgroupProcs(h.cgroup) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(data) == 0 {
			continue
		}
		cmds = append(cmds, strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " ")))
	}
	return cmds
}

// cgroupProcs lists the processes in the cgroup directories named cg, in
// every hierarchy, each once.
func cgroupProcs(cg string) []int {
	if cg == "" {
		return nil
	}
	roots, _ := filepath.Glob("/sys/fs/cgroup/" + cg)
	more, _ := filepath.Glob("/sys/fs/cgroup/*/" + cg)
	var pids []int
	seen := map[int]bool{}
	for _, root := range append(roots, more...) {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if data, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(data)) {
					if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
						seen[pid] = true
						pids = append(pids, pid)
					}
				}
			}
			return nil
		})
	}
	return pids
}

// Stop kills the host (its sshd, manager and units) and removes its
// cgroups. It is also a host going down mid-run.
func (h *Host) Stop() {
	if h.pgid <= 0 {
		return
	}
	h.Thaw() // a frozen host dies too (SIGKILL needs no SIGCONT), but leaves nothing stopped behind
	syscall.Kill(-h.pgid, syscall.SIGKILL)
	pgid := h.pgid
	h.pgid = 0
	// The manager's units live in cgroups of their own; kill whatever is
	// left in the host's cgroups, then remove them.
	for i := 0; i < 50; i++ {
		if syscall.Kill(-pgid, 0) != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h.cgroup != "" {
		removeCgroups(h.cgroup)
	}
}

// cgroupOf finds the fakehost-... cgroup directory name of pid.
func cgroupOf(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		for _, part := range strings.Split(line, "/") {
			if strings.HasPrefix(part, "fakehost-") {
				return part
			}
		}
	}
	return ""
}

// removeCgroups kills what is left in the host's cgroups (the manager's
// units live in cgroups of their own) and removes them.
func removeCgroups(cg string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/" + cg)
	more, _ := filepath.Glob("/sys/fs/cgroup/*/" + cg)
	for _, root := range append(roots, more...) {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if data, err := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(data)) {
					if pid, err := strconv.Atoi(f); err == nil {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			for try := 0; try < 20 && os.Remove(dirs[i]) != nil; try++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

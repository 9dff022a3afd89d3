package steps

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/internal/fakehost"
	"github.com/rollout-sh/rollout/planner"
)

// nasty are argv elements a shell would read as syntax.
var nasty = []string{
	"; rm -rf /tmp/should-not-exist",
	"$(touch /tmp/should-not-exist)",
	"`id`",
	`it's "quoted"`,
	"two  spaces\tand tab",
	"",
	"back\\slash",
	"new\nline",
	"$HOME ${PATH} * ? [a]",
	"-n",
}

// TestRemoteLineVerbatim runs the line ssh would hand to the remote shell
// through a local sh: every element must arrive as one argument, as given.
func TestRemoteLineVerbatim(t *testing.T) {
	argv := append([]string{"printf", "%s\\0"}, nasty...)
	line := RemoteLine(Cmd{Argv: argv, Dir: "/", Env: []string{"X=a b;c"}}, 0)
	out, err := exec.Command("sh", "-c", line).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", line, err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(nasty) {
		t.Fatalf("got %d arguments %q, want %d %q", len(got), got, len(nasty), nasty)
	}
	for i := range nasty {
		if got[i] != nasty[i] {
			t.Errorf("argument %d: got %q, want %q", i, got[i], nasty[i])
		}
	}
	if _, err := os.Stat("/tmp/should-not-exist"); err == nil {
		t.Fatal("an argument was run as a command")
	}
}

func newTestHostSet(t *testing.T, hosts ...*fakehost.Host) (*HostSet, map[string]*planner.Host) {
	t.Helper()
	set, err := NewHostSet(context.Background(), SSHConfig{ConnectTimeout: 5 * time.Second, ServerAlive: time.Second, CallTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	ph := map[string]*planner.Host{}
	for _, h := range hosts {
		ph[h.Name] = &planner.Host{Name: h.Name, Address: "127.0.0.1", User: "root", Port: h.Port,
			SSHArgs: h.SSHArgs(), SystemdBus: "unix:path=/srv/run/bus"}
	}
	return set, ph
}

// TestSSHHost drives one fake host through every method of the Host
// interface, with real ssh, sshd, rsync and systemd.
func TestSSHHost(t *testing.T) {
	fh := fakehost.Start(t, "sshhost")
	set, ph := newTestHostSet(t, fh)
	h, err := set.Get(ph["sshhost"])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("argv arrives verbatim", func(t *testing.T) {
		var out bytes.Buffer
		argv := append([]string{"printf", "%s\\0"}, nasty...)
		if err := h.Run(ctx, Cmd{Argv: argv, Stdout: &out}); err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSuffix(out.String(), "\x00"), "\x00")
		if strings.Join(got, "|") != strings.Join(nasty, "|") {
			t.Fatalf("got %q, want %q", got, nasty)
		}
		if out := fh.MustRun(t, "ls /tmp/should-not-exist 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Fatalf("an argument was run as a command on the host: %s", out)
		}
	})

	t.Run("dir env and exit status", func(t *testing.T) {
		var out bytes.Buffer
		err := h.Run(ctx, Cmd{Argv: []string{"sh", "-c", `echo "$(pwd) $X $(cat /srv/hostname)"; exit 3`}, Dir: "/srv", Env: []string{"X=a 'b'"}, Stdout: &out})
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
			t.Fatalf("err = %v, want exit status 3", err)
		}
		if got, want := strings.TrimSpace(out.String()), "/srv a 'b' sshhost"; got != want {
			t.Fatalf("output %q, want %q", got, want)
		}
	})

	t.Run("files keep mode and owner", func(t *testing.T) {
		fh.MustRun(t, "printf 'old\\n' >/srv/f && chown 1234:5678 /srv/f && chmod 0640 /srv/f && ln -s f /srv/link")
		data, info, err := h.ReadFile(ctx, "/srv/f")
		if err != nil || string(data) != "old\n" {
			t.Fatalf("ReadFile = %q, %v", data, err)
		}
		if info.UID != 1234 || info.GID != 5678 || info.Mode.Perm() != 0o640 || !info.Mode.IsRegular() {
			t.Fatalf("info = %+v", info)
		}
		if err := h.WriteFile(ctx, "/srv/g", []byte("new 'x'\n"), info); err != nil {
			t.Fatal(err)
		}
		if got := fh.MustRun(t, "stat -c '%u:%g %a' /srv/g; cat /srv/g"); got != "1234:5678 640\nnew 'x'\n" {
			t.Fatalf("written file: %q", got)
		}
		li, err := h.Stat(ctx, "/srv/link")
		if err != nil || li.Mode&fs.ModeSymlink == 0 {
			t.Fatalf("Stat(link) = %+v, %v", li, err)
		}
		if real, err := h.Realpath(ctx, "/srv/link"); err != nil || real != "/srv/f" {
			t.Fatalf("Realpath = %q, %v", real, err)
		}
		if _, err := h.Stat(ctx, "/srv/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat(missing) = %v, want ErrNotExist", err)
		}
		// Locally the same path does not exist: the file is on the host.
		if _, err := os.Stat("/srv/g"); err == nil {
			t.Fatal("/srv/g exists on the controller")
		}
	})

	t.Run("upload mirrors a controller directory to the host", func(t *testing.T) {
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "app.js"), []byte("v2"), 0o644)
		fh.MustRun(t, "mkdir -p '/srv/code dir' && echo stale >'/srv/code dir/old.js'")
		var out bytes.Buffer
		if err := h.Upload(ctx, []string{"--delete"}, src, "/srv/code dir", &out); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		if got := fh.MustRun(t, "ls '/srv/code dir'; cat '/srv/code dir/app.js'"); got != "app.js\nv2" {
			t.Fatalf("host directory: %q", got)
		}
	})

	t.Run("systemd over the bridge", func(t *testing.T) {
		fh.MustRun(t, `printf '[Service]\nExecStart=/bin/sleep 600\n' >/srv/cfg/systemd/user/sshtest.service`)
		sd := h.Systemd()
		if err := sd.DaemonReload(ctx); err != nil {
			t.Fatal(err)
		}
		if err := sd.Do(ctx, OpStart, "sshtest.service"); err != nil {
			t.Fatal(err)
		}
		before, err := sd.Status(ctx, "sshtest.service")
		if err != nil || before.ActiveState != "active" {
			t.Fatalf("status %+v, %v", before, err)
		}
		if err := sd.Do(ctx, OpRestart, "sshtest.service"); err != nil {
			t.Fatal(err)
		}
		after, _ := sd.Status(ctx, "sshtest.service")
		if after.InvocationID == before.InvocationID || after.InvocationID == "" {
			t.Fatalf("InvocationID %q → %q: not restarted", before.InvocationID, after.InvocationID)
		}
		if got := strings.TrimSpace(fh.MustRun(t, "systemctl --user show -p InvocationID --value sshtest.service")); got != after.InvocationID {
			t.Fatalf("host says InvocationID %q, backend %q", got, after.InvocationID)
		}
		// The exec health probe runs on the host: /srv/hostname is the
		// host's, not the controller's.
		hc := &planner.Health{Kind: "exec", Command: []string{"grep", "-qx", "sshhost", "/srv/hostname"}, Timeout: 5 * time.Second, Retries: 1}
		if err := CheckHealth(ctx, hc, "sshtest.service", sd, nil); err != nil {
			t.Fatalf("exec health on the host: %v", err)
		}
	})
}

// TestSSHHostDown kills a host and checks that a command and a systemd
// call fail within a bounded time, naming the host.
func TestSSHHostDown(t *testing.T) {
	fh := fakehost.Start(t, "downhost")
	set, ph := newTestHostSet(t, fh)
	h, _ := set.Get(ph["downhost"])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := h.Systemd().Status(ctx, "x.service"); err != nil {
		t.Fatal(err)
	}
	fh.Stop()
	start := time.Now()
	_, err := h.Systemd().Status(ctx, "x.service")
	if err == nil || !strings.Contains(err.Error(), "downhost") {
		t.Fatalf("Status after the host died: %v, want an error naming the host", err)
	}
	err = h.Run(ctx, Cmd{Argv: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "downhost") {
		t.Fatalf("Run after the host died: %v, want an error naming the host", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("failing took %s", d)
	}
}

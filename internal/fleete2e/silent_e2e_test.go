package fleete2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/fakehost"
)

// TestSilentHostE2E stops (SIGSTOP) every process of a host in the middle
// of a run, while the service's first instance runs on another host: the
// host's TCP connections stay up but nothing answers. Its own instance
// comes next and needs its manager (restart is the first step): the run
// must end, fail that instance naming the host, and restart the service on
// the other hosts (on_failure "continue"). The only time asserted is a
// generous limit on the whole run.
func TestSilentHostE2E(t *testing.T) {
	t.Parallel()
	f := &fleet{t: t, dir: t.TempDir()}
	f.events = filepath.Join(f.dir, "events.jsonl")
	for _, name := range []string{"quiet1", "quiet2", "quiet3"} {
		h := fakehost.Start(t, name)
		f.hosts = append(f.hosts, h)
		h.Stdout(t, "printf '"+busUnit+"' >/srv/cfg/systemd/user/api.service && systemctl --user daemon-reload && systemctl --user start api.service")
	}
	silent := f.hosts[1]
	var b strings.Builder
	for _, h := range f.hosts {
		// Keep-alives every second, two unanswered drop the connection.
		hcl := strings.Replace(h.HCL(), "ssh_args    = [", `ssh_args    = ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2", "-o", "ConnectTimeout=3", `, 1)
		if !strings.Contains(hcl, "ServerAliveCountMax=2") {
			t.Fatalf("no ssh_args in the host block:\n%s", hcl)
		}
		b.WriteString(hcl)
	}
	b.WriteString(`
plan "silent" {
  on_failure = "continue"
}

pipeline "default" {
  step "restart" "restart" {}
  step "exec" "slow" {
    command = ["sh", "-c", "if [ \"$1\" = quiet1 ]; then touch /srv/slow-started; sleep 3; fi", "slow", "${host.name}"]
  }
  step "health_check" "verify" {}
}

service "api" {
  unit   = "api.service"
  hosts  = ["quiet1", "quiet2", "quiet3"]
  serial = [1]
}
`)
	plan := filepath.Join(f.dir, "silent.hcl")
	writeFile(t, plan, b.String())
	id := func(h *fakehost.Host) string { return invocationID(t, h, "api.service") }
	before := map[string]string{}
	for _, h := range f.hosts {
		before[h.Name] = id(h)
	}

	cmd := f.command("run", plan, "--user", "--events", f.events, "--no-tty")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// quiet2 goes silent while api@quiet1 runs its slow step, with the
	// run's connections to quiet2 open.
	waitForFile(t, f.hosts[0], "/srv/slow-started", cmd, bufs{&out, &errOut})
	silent.Freeze()
	t.Cleanup(silent.Thaw) // before the host's Stop, which runs earlier-registered

	const limit = 90 * time.Second
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the run did not end within %s of its start:\n%s%s", limit, out.String(), errOut.String())
	}
	t.Logf("the run ended after %s", time.Since(t0).Round(100*time.Millisecond))
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %d (%v), want 1\n%s%s", cmd.ProcessState.ExitCode(), err, out.String(), errOut.String())
	}
	evs := f.readEvents()
	i := indexOf(evs, executor.ServiceRestartFailed, "api@quiet2")
	if i < 0 || evs[i].Host != "quiet2" || !strings.Contains(evs[i].Error, "quiet2") {
		t.Fatalf("api@quiet2 did not fail naming its host:\n%s", eventLines(evs))
	}
	if !strings.Contains(out.String()+errOut.String(), "quiet2") {
		t.Errorf("the run's output does not name quiet2:\n%s%s", out.String(), errOut.String())
	}
	for _, h := range []*fakehost.Host{f.hosts[0], f.hosts[2]} {
		inst := "api@" + h.Name
		if indexOf(evs, executor.ServiceRestartSuccess, inst) < 0 {
			t.Errorf("%s did not succeed:\n%s", inst, eventLines(evs))
		}
		if after := id(h); after == before[h.Name] || after == "" {
			t.Errorf("%s: InvocationID %q → %q, not restarted", inst, before[h.Name], after)
		}
	}
}

// eventLines shows events one a line, for a failure message.
func eventLines(evs []executor.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s host=%q %s\n", e.Event, e.Service, e.Host, e.Error)
	}
	return b.String()
}

// invocationID is unit's InvocationID on h ("" when it has none).
func invocationID(t *testing.T, h *fakehost.Host, unit string) string {
	t.Helper()
	return lastLine(h.Stdout(t, "systemctl --user show -p InvocationID --value "+unit))
}

// waitForFile waits until path exists on h (a step of a running command
// cmd has started), killing cmd and failing t after a minute.
func waitForFile(t *testing.T, h *fakehost.Host, path string, cmd *exec.Cmd, out fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if o, _ := h.Run("test -e " + path + " && echo yes"); strings.TrimSpace(o) == "yes" {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("%s never appeared on %s:\n%s", path, h.Name, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bufs shows several buffers as one, for a failure message.
type bufs []*bytes.Buffer

func (b bufs) String() string {
	var s strings.Builder
	for _, x := range b {
		s.WriteString(x.String())
	}
	return s.String()
}

package fleete2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/internal/fakehost"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// busUnit is the unit of TestHostBusE2E.
const busUnit = `[Service]\nType=exec\nExecStart=/bin/sleep 600\n`

// bridges lists the host's systemd-stdio-bridge processes.
func bridges(h *fakehost.Host) []string {
	var out []string
	for _, c := range h.Processes() {
		if strings.Contains(c, "systemd-stdio-bridge") {
			out = append(out, c)
		}
	}
	return out
}

// TestHostBusE2E checks how rollout reaches a host's manager: through the
// bus socket forwarded over the ssh master (no process on the host), and
// through systemd-stdio-bridge on a host whose sshd refuses forwarding,
// where a real run still restarts the unit.
func TestHostBusE2E(t *testing.T) {
	t.Parallel()
	f := &fleet{t: t, dir: t.TempDir()}
	f.events = filepath.Join(f.dir, "events.jsonl")
	fwd := fakehost.Start(t, "fwd")
	nofwd := fakehost.StartWith(t, "nofwd", fakehost.Options{SSHDConfig: []string{"DisableForwarding yes"}})
	f.hosts = []*fakehost.Host{fwd, nofwd}
	for _, h := range f.hosts {
		h.Stdout(t, "printf '"+busUnit+"' >/srv/cfg/systemd/user/b.service && systemctl --user daemon-reload && systemctl --user start b.service")
	}

	set, err := steps.NewHostSet(context.Background(), steps.SSHConfig{ConnectTimeout: 5 * time.Second, ServerAlive: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	status := func(t *testing.T, h *fakehost.Host) steps.UnitState {
		t.Helper()
		ph := &planner.Host{Name: h.Name, Address: "127.0.0.1", User: "root", Port: h.Port,
			SSHArgs: h.SSHArgs(), SystemdBus: "unix:path=/srv/run/bus"}
		x, _ := set.Get(ph)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := x.Systemd().Status(ctx, "b.service")
		if err != nil {
			t.Fatalf("status on %s: %v", h.Name, err)
		}
		if st.ActiveState != "active" || st.InvocationID == "" {
			t.Fatalf("status on %s: %+v", h.Name, st)
		}
		return st
	}

	t.Run("the bus is reached through the forwarded socket", func(t *testing.T) {
		st := status(t, fwd)
		// The connection is held (the set is open): a bridge would be
		// running on the host now.
		if b := bridges(fwd); len(b) > 0 {
			t.Fatalf("systemd-stdio-bridge runs on %s while rollout holds its connection: %q", fwd.Name, b)
		}
		if got := lastLine(fwd.Stdout(t, "systemctl --user show -p InvocationID --value b.service")); got != st.InvocationID {
			t.Fatalf("host says InvocationID %q, rollout read %q", got, st.InvocationID)
		}
	})

	t.Run("a host refusing forwarding is reached through the bridge", func(t *testing.T) {
		status(t, nofwd)
		// The same look that found no bridge on fwd finds this one's:
		// the check above can see a bridge.
		if b := bridges(nofwd); len(b) == 0 {
			t.Fatalf("no systemd-stdio-bridge on %s, which refuses forwarding; processes: %q", nofwd.Name, nofwd.Processes())
		}
	})

	t.Run("a run restarts the unit on a host refusing forwarding", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(nofwd.HCL())
		b.WriteString(`
pipeline "default" {
  step "restart" "restart" {}
  step "health_check" "verify" {}
}

service "b" {
  unit  = "b.service"
  hosts = ["nofwd"]
}
`)
		plan := filepath.Join(f.dir, "nofwd.hcl")
		writeFile(t, plan, b.String())
		id := func() string {
			return lastLine(nofwd.Stdout(t, "systemctl --user show -p InvocationID --value b.service"))
		}
		before := id()
		res := f.rollout("run", plan, "--user", "--events", f.events, "--no-tty")
		if res.Code != 0 {
			t.Fatalf("exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		if after := id(); after == before || after == "" {
			t.Fatalf("InvocationID %q → %q: not restarted", before, after)
		}
	})
}

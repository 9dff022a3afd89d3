package usermanager_test

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/internal/testenv"
	"github.com/rollout-sh/rollout/internal/usermanager"
)

// TestStartStop: a started manager runs and takes calls; Stop leaves no
// process and no directory behind.
func TestStartStop(t *testing.T) {
	if os.Geteuid() != 0 {
		systemdtest.Require(t, errors.New("a private manager needs root"))
	}
	m, err := usermanager.Start(usermanager.Options{Prefix: "umt-"})
	if err != nil {
		systemdtest.Require(t, err)
	}
	t.Logf("manager running after %s", m.StartDuration)
	pid := m.PID()
	if state, err := m.Admin.GetManagerProperty("SystemState"); err != nil || (state != `"running"` && state != `"degraded"`) {
		t.Errorf("SystemState %s, %v", state, err)
	}
	if conn, err := usermanager.Probe(m.BusAddress, usermanager.DefaultStartTimeout); err != nil {
		t.Errorf("probing the bus: %v", err)
	} else {
		conn.Close()
	}
	m.Stop()
	m.Stop() // twice is fine
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("manager pid %d still there after Stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(m.BaseDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("base dir %s still there: %v", m.BaseDir, err)
	}
}

func TestStartRefusesLongSocketPath(t *testing.T) {
	testenv.NeedRoot(t, "as another user the root check refuses first")
	parent := t.TempDir() + "/" + strings.Repeat("x", 100)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := usermanager.Start(usermanager.Options{Parent: parent})
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v, want the socket path refused", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) > 0 {
		t.Errorf("left %d entries in %s", len(entries), parent)
	}
}

func TestSessionBusAddress(t *testing.T) {
	env := map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x/bus"}
	if got := usermanager.SessionBusAddress(func(k string) string { return env[k] }); got != "unix:path=/x/bus" {
		t.Errorf("got %q, want the variable's value", got)
	}
	got := usermanager.SessionBusAddress(func(string) string { return "" })
	if got != "" && !strings.HasPrefix(got, "unix:path=/run/user/") {
		t.Errorf("got %q, want \"\" or /run/user/UID/bus", got)
	}
}

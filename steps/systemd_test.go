package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/planner"
)

// testUnit is a testsvc unit under a real manager.
type testUnit struct {
	name string
	port int
	dir  string
}

func (u testUnit) get(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "http://127.0.0.1:" + strconv.Itoa(u.port) + path
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.TrimSpace(string(b))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: %v", url, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// writeTestUnit writes a testsvc unit without reloading the manager.
func writeTestUnit(t testing.TB, m *systemdtest.Manager, name string, opts systemdtest.UnitOptions) testUnit {
	t.Helper()
	u := testUnit{name: name, port: systemdtest.FreePort(t), dir: t.TempDir()}
	m.WriteUnitFile(t, name, systemdtest.HTTPServiceUnit(name, m.Testsvc(t), u.port, u.dir, opts))
	return u
}

func connectTest(t *testing.T, address string) *DBus {
	t.Helper()
	d, err := Connect(t.Context(), ConnectOptions{Address: address, JobTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustDo(t *testing.T, d *DBus, op Op, unit string) {
	t.Helper()
	if err := d.Do(t.Context(), op, unit); err != nil {
		t.Fatalf("%s %s: %v", op, unit, err)
	}
}

func mustStatus(t *testing.T, d *DBus, unit string) UnitState {
	t.Helper()
	st, err := d.Status(t.Context(), unit)
	if err != nil {
		t.Fatalf("status %s: %v", unit, err)
	}
	return st
}

// TestDBusRealManager runs the D-Bus backend against a real systemd --user
// manager with testsvc units.
func TestDBusRealManager(t *testing.T) {
	m := systemdtest.Start(t)
	t.Logf("manager running after %s", m.StartDuration)

	// All units are written up front with one daemon-reload, which
	// keeps the parallel subtests from queueing a reload each.
	units := map[string]testUnit{}
	for name, opts := range map[string]systemdtest.UnitOptions{
		"jobs-bus.service":        {},
		"jobs-private.service":    {},
		"reload-yes.service":      {Reload: true},
		"reload-no.service":       {},
		"reload-inactive.service": {Reload: true},
		"fail-start.service":      {Args: []string{"-fail-start"}},
		"health.service":          {Args: []string{"-ready-delay", "300ms"}},
		"edited.service":          {},
	} {
		units[name] = writeTestUnit(t, m, name, opts)
	}
	noBinaryDir := t.TempDir()
	m.WriteUnitFile(t, "no-binary.service", systemdtest.HTTPServiceUnit("no-binary",
		filepath.Join(noBinaryDir, "does-not-exist"), systemdtest.FreePort(t), noBinaryDir, systemdtest.UnitOptions{}))
	m.DaemonReload(t)

	t.Run("parallel", func(t *testing.T) { testDBusParallel(t, m, units) })
	// Last and alone, since it reloads the manager.
	t.Run("NeedDaemonReload", func(t *testing.T) { testNeedDaemonReload(t, m, units["edited.service"]) })
}

func testDBusParallel(t *testing.T, m *systemdtest.Manager, units map[string]testUnit) {
	// Both ways in: the bus daemon, and systemd's private socket (no Hello).
	for _, address := range []string{m.BusAddress, m.PrivateAddress} {
		t.Run("jobs via "+filepath.Base(address), func(t *testing.T) {
			t.Parallel()
			d := connectTest(t, address)
			name := fmt.Sprintf("jobs-%s.service", filepath.Base(address))
			u := units[name]

			mustDo(t, d, OpStart, name)
			started := mustStatus(t, d, name)
			if started.ActiveState != "active" || started.SubState != "running" || started.MainPID == 0 || started.InvocationID == "" {
				t.Fatalf("after start: %+v", started)
			}
			if err := started.Loaded(); err != nil {
				t.Errorf("Loaded() = %v", err)
			}
			if got := u.get(t, "/pid"); got != strconv.Itoa(int(started.MainPID)) {
				t.Errorf("/pid = %s, MainPID = %d", got, started.MainPID)
			}

			began := time.Now()
			mustDo(t, d, OpRestart, name)
			t.Logf("restart job took %s", time.Since(began))
			restarted := mustStatus(t, d, name)
			if restarted.InvocationID == started.InvocationID || restarted.MainPID == started.MainPID || restarted.MainPID == 0 {
				t.Errorf("restart kept the process: before %s/%d, after %s/%d",
					started.InvocationID, started.MainPID, restarted.InvocationID, restarted.MainPID)
			}
			if restarted.ActiveEnterMono <= started.ActiveEnterMono {
				t.Errorf("ActiveEnterMono %d not after %d", restarted.ActiveEnterMono, started.ActiveEnterMono)
			}

			mustDo(t, d, OpStop, name)
			stopped := mustStatus(t, d, name)
			if stopped.ActiveState != "inactive" || stopped.MainPID != 0 {
				t.Errorf("after stop: %s, MainPID %d", stopped.ActiveState, stopped.MainPID)
			}
			mustDo(t, d, OpStart, name)
			again := mustStatus(t, d, name)
			if again.InvocationID == restarted.InvocationID || again.MainPID == 0 {
				t.Errorf("start after stop: InvocationID %s (was %s), MainPID %d", again.InvocationID, restarted.InvocationID, again.MainPID)
			}
		})
	}

	t.Run("reload keeps the process", func(t *testing.T) {
		t.Parallel()
		d := connectTest(t, m.BusAddress)
		u := units["reload-yes.service"]
		mustDo(t, d, OpStart, u.name)
		if got := u.get(t, "/reloads"); got != "0" {
			t.Fatalf("/reloads before = %s", got)
		}
		before := mustStatus(t, d, u.name)
		if !before.CanReload {
			t.Errorf("CanReload false for a unit with ExecReload")
		}
		for _, op := range []Op{OpReload, OpReloadOrRestart} {
			mustDo(t, d, op, u.name)
		}
		after := mustStatus(t, d, u.name)
		if after.MainPID != before.MainPID || after.InvocationID != before.InvocationID {
			t.Errorf("reload changed the process: %d→%d", before.MainPID, after.MainPID)
		}
		if after.ReloadResult != "success" {
			t.Errorf("ReloadResult = %q", after.ReloadResult)
		}
		// ExecReload's kill returns before testsvc handles SIGHUP.
		deadline := time.Now().Add(5 * time.Second)
		for u.get(t, "/reloads") != "2" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := u.get(t, "/reloads"); got != "2" {
			t.Errorf("/reloads = %s, want 2", got)
		}
	})

	t.Run("reload without ExecReload", func(t *testing.T) {
		t.Parallel()
		d := connectTest(t, m.BusAddress)
		u := units["reload-no.service"]
		mustDo(t, d, OpStart, u.name)
		before := mustStatus(t, d, u.name)
		if before.CanReload {
			t.Errorf("CanReload true without ExecReload")
		}
		err := d.Do(t.Context(), OpReload, u.name)
		if !errors.Is(err, ErrNotApplicable) {
			t.Errorf("reload error = %v, want ErrNotApplicable", err)
		}
		// reload-or-restart restarts instead.
		mustDo(t, d, OpReloadOrRestart, u.name)
		if after := mustStatus(t, d, u.name); after.MainPID == before.MainPID {
			t.Errorf("reload-or-restart without ExecReload kept MainPID %d", after.MainPID)
		}
	})

	t.Run("reload of an inactive unit", func(t *testing.T) {
		t.Parallel()
		d := connectTest(t, m.BusAddress)
		u := units["reload-inactive.service"]
		err := d.Do(t.Context(), OpReload, u.name)
		var je *JobError
		if !errors.As(err, &je) || je.Result != "invalid" {
			t.Errorf("reload of inactive unit = %v, want job result invalid", err)
		}
	})

	t.Run("missing unit", func(t *testing.T) {
		t.Parallel()
		d := connectTest(t, m.BusAddress)
		for _, op := range []Op{OpStart, OpRestart, OpStop, OpReload} {
			if err := d.Do(t.Context(), op, "no-such-unit.service"); !errors.Is(err, ErrNoSuchUnit) {
				t.Errorf("%s: error = %v, want ErrNoSuchUnit", op, err)
			}
		}
		st := mustStatus(t, d, "no-such-unit.service")
		if st.LoadState != "not-found" {
			t.Errorf("LoadState = %q, want not-found", st.LoadState)
		}
		if err := st.Loaded(); err == nil || !strings.Contains(err.Error(), "not-found") {
			t.Errorf("Loaded() = %v, want an error naming not-found", err)
		}
	})

	t.Run("missing binary", func(t *testing.T) {
		t.Parallel()
		d := connectTest(t, m.BusAddress)
		err := d.Do(t.Context(), OpStart, "no-binary.service")
		var je *JobError
		if err == nil || !strings.Contains(err.Error(), "failed") || !errors.As(err, &je) {
			t.Fatalf("start = %v, want a failed job", err)
		}
		st := mustStatus(t, d, "no-binary.service")
		if st.ActiveState != "failed" || st.Result == "success" {
			t.Errorf("after failed start: %s, Result %s", st.ActiveState, st.Result)
		}
		if err := d.Reset(t.Context(), "no-binary.service"); err != nil {
			t.Fatal(err)
		}
		if st := mustStatus(t, d, "no-binary.service"); st.ActiveState != "inactive" {
			t.Errorf("after reset-failed: %s", st.ActiveState)
		}
	})

	t.Run("fail-start", func(t *testing.T) {
		t.Parallel()
		d := connectTest(t, m.BusAddress)
		// Type=exec is done once the binary runs; the exit usually comes
		// after, but may win the race and fail the job.
		u := units["fail-start.service"]
		var je *JobError
		if err := d.Do(t.Context(), OpStart, u.name); err != nil && !(errors.As(err, &je) && je.Result == "failed") {
			t.Fatalf("start: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		st := mustStatus(t, d, u.name)
		for st.ActiveState != "failed" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			st = mustStatus(t, d, u.name)
		}
		if st.ActiveState != "failed" || st.Result != "exit-code" {
			t.Errorf("testsvc -fail-start: %s, Result %s; want failed, exit-code", st.ActiveState, st.Result)
		}
	})

	t.Run("health after restart", func(t *testing.T) {
		t.Parallel()
		d := connectTest(t, m.BusAddress)
		// Slow to listen, like a real service after its job is done.
		u := units["health.service"]
		mustDo(t, d, OpStart, u.name)
		h := &planner.Health{Kind: dsl.HealthHTTP, URL: "http://127.0.0.1:" + strconv.Itoa(u.port) + "/health",
			Timeout: 10 * time.Second, Retries: 2, Interval: time.Second}
		for range 2 {
			before := u.get(t, "/pid")
			mustDo(t, d, OpRestart, u.name)
			done := time.Now()
			var attempts int
			if err := CheckHealth(t.Context(), h, u.name, d, func(n int) { attempts = n }); err != nil {
				t.Fatal(err)
			}
			t.Logf("healthy %s after the restart job was done (testsvc -ready-delay 300ms), %d attempt(s)", time.Since(done), attempts)
			if after := u.get(t, "/pid"); after == before {
				t.Errorf("health check passed against the old process %s", before)
			}
		}
		sdHealth := &planner.Health{Kind: dsl.HealthSystemd, Timeout: 5 * time.Second, Retries: 1, Interval: 100 * time.Millisecond}
		if err := CheckHealth(t.Context(), sdHealth, u.name, d, nil); err != nil {
			t.Errorf("systemd check of a running unit: %v", err)
		}
		if err := os.WriteFile(filepath.Join(u.dir, "UNHEALTHY"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// Long enough for a probe to complete on a loaded machine: an
		// attempt that times out before any answer reports the deadline,
		// not the state.
		h.Timeout, h.Interval = time.Second, 20*time.Millisecond
		err := CheckHealth(t.Context(), h, u.name, d, nil)
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("check of an UNHEALTHY testsvc = %v, want a 503", err)
		}
		mustDo(t, d, OpStop, u.name)
		sdHealth.Timeout = time.Second
		if err := CheckHealth(t.Context(), sdHealth, u.name, d, nil); err == nil || !strings.Contains(err.Error(), "inactive") {
			t.Errorf("systemd check of a stopped unit = %v, want inactive", err)
		}
	})

}

func testNeedDaemonReload(t *testing.T, m *systemdtest.Manager, u testUnit) {
	{
		d := connectTest(t, m.BusAddress)
		mustDo(t, d, OpStart, u.name)
		if st := mustStatus(t, d, u.name); st.NeedDaemonReload {
			t.Fatal("NeedDaemonReload true right after daemon-reload")
		}
		path := filepath.Join(m.UnitDir, u.name)
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(content), "[Service]\n", "[Service]\nEnvironment=EDITED=1\n", 1)
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		// systemd compares the file's mtime with its load time (µs).
		future := time.Now().Add(2 * time.Second)
		if err := os.Chtimes(path, future, future); err != nil {
			t.Fatal(err)
		}
		st := mustStatus(t, d, u.name)
		if !st.NeedDaemonReload {
			t.Error("NeedDaemonReload false after editing the unit file")
		}
		if st.FragmentPath != path {
			t.Errorf("FragmentPath = %q, want %q", st.FragmentPath, path)
		}
		if err := d.DaemonReload(t.Context()); err != nil {
			t.Fatal(err)
		}
		if st := mustStatus(t, d, u.name); st.NeedDaemonReload {
			t.Error("NeedDaemonReload true after DaemonReload")
		}
	}
}

// TestDBusConnectionLost kills the bus daemon while a job runs: Do must
// return ErrConnectionLost, and the next read-only call must reconnect.
func TestDBusConnectionLost(t *testing.T) {
	m := systemdtest.Start(t)
	d := connectTest(t, m.BusAddress)
	direct := connectTest(t, m.PrivateAddress)
	u := writeTestUnit(t, m, "slow.service", systemdtest.UnitOptions{Extra: []string{"ExecStartPre=/bin/sleep 1"}})
	m.DaemonReload(t)
	before := mustStatus(t, d, u.name)

	bus := mustStatus(t, direct, "dbus.service")
	if bus.MainPID == 0 {
		t.Fatalf("dbus.service has no MainPID: %+v", bus)
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Do(context.Background(), OpStart, u.name) }()
	// Kill the bus once the job is queued.
	deadline := time.Now().Add(5 * time.Second)
	for mustStatus(t, direct, u.name).ActiveState != "activating" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(int(bus.MainPID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := <-errc; !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Do during bus loss = %v, want ErrConnectionLost", err)
	}
	// Status redials (dbus.socket starts a new bus daemon) and tells the
	// caller whether the start happened, by InvocationID.
	deadline = time.Now().Add(10 * time.Second)
	st, err := d.Status(t.Context(), u.name)
	for (err != nil || st.ActiveState != "active") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		st, err = d.Status(t.Context(), u.name)
	}
	if err != nil {
		t.Fatalf("Status after reconnect: %v", err)
	}
	if st.ActiveState != "active" || st.InvocationID == before.InvocationID {
		t.Errorf("after reconnect: %s, InvocationID %s (was %q)", st.ActiveState, st.InvocationID, before.InvocationID)
	}
	t.Logf("Do returned and Status reconnected %s after the bus was killed", time.Since(killed))
	// And jobs work again on the new connection.
	mustDo(t, d, OpRestart, u.name)
}

// TestConnectUser dials the user manager the way `rollout --user` does,
// from DBUS_SESSION_BUS_ADDRESS; and a cancelled Connect ctx ends the
// backend.
func TestConnectUser(t *testing.T) {
	m := systemdtest.Start(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", m.BusAddress)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := Connect(ctx, ConnectOptions{User: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if st := mustStatus(t, d, "dbus.service"); st.ActiveState != "active" || st.MainPID == 0 {
		t.Errorf("dbus.service through the user bus: %s, MainPID %d", st.ActiveState, st.MainPID)
	}
	cancel()
	if _, err := d.Status(t.Context(), "dbus.service"); !errors.Is(err, context.Canceled) {
		t.Errorf("Status after the Connect ctx was cancelled = %v, want context.Canceled", err)
	}
}

// TestConnectNoAnswer: a bus that accepts but never answers must not hang
// Connect (godbus's Auth and Hello take no context).
func TestConnectNoAnswer(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "mute.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	_, err = Connect(t.Context(), ConnectOptions{Address: "unix:path=" + path, CallTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Errorf("Connect to a mute socket = %v, want no answer within 200ms", err)
	}
}

// TestStatusReadsWhatGetAllReads: Status reads each property with its own
// Get (see readState); it must decode to what GetAll(Unit) and
// GetAll(Service) give, for a running service, a stopped one, a unit
// systemd does not know and a unit that is not a service; and StatusOf
// must give exactly the fields asked for (plus LoadState).
func TestStatusReadsWhatGetAllReads(t *testing.T) {
	m := systemdtest.Start(t)
	running := writeTestUnit(t, m, "status-running.service", systemdtest.UnitOptions{Reload: true})
	stopped := writeTestUnit(t, m, "status-stopped.service", systemdtest.UnitOptions{})
	m.WriteUnitFile(t, "status.target", "[Unit]\nDescription=status test target\n")
	m.DaemonReload(t)
	d := connectTest(t, m.BusAddress)
	mustDo(t, d, OpStart, running.name)
	mustDo(t, d, OpStart, "status.target")
	conn, err := m.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, unit := range []string{running.name, stopped.name, "status-missing.service", "status.target"} {
		t.Run(unit, func(t *testing.T) {
			props, err := conn.GetUnitPropertiesContext(t.Context(), unit)
			if err != nil {
				t.Fatal(err)
			}
			want := unitStateFrom(props)
			if want.LoadState == "loaded" && strings.HasSuffix(unit, ".service") {
				svc, err := conn.GetUnitTypePropertiesContext(t.Context(), unit, "Service")
				if err != nil {
					t.Fatal(err)
				}
				addServiceState(&want, svc)
			}
			got := mustStatus(t, d, unit)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Status(%s)\n got %+v\nwant %+v (GetAll)", unit, got, want)
			}
			for name, fields := range map[string]Field{"beforeJobFields": beforeJobFields, "afterRestartFields": afterRestartFields, "watchFields": watchFields} {
				part, err := d.StatusOf(t.Context(), unit, fields)
				if err != nil {
					t.Fatal(err)
				}
				if w := want.Only(fields | FieldLoadState); fmt.Sprint(part) != fmt.Sprint(w) {
					t.Errorf("StatusOf(%s, %s)\n got %+v\nwant %+v", unit, name, part, w)
				}
			}
			if unit == running.name && (got.InvocationID == "" || got.MainPID == 0 || !got.CanReload || got.FragmentPath == "") {
				t.Errorf("Status(%s) = %+v: want an InvocationID, a MainPID, CanReload and a FragmentPath", unit, got)
			}
		})
	}
}

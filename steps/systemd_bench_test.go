package steps

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/internal/systemdtest"
)

// BenchmarkDBusStatus measures the status reads of one restart step on a
// real systemd --user manager (through its bus): the whole Status (every
// property UnitState holds), the two GetAll calls it once made, and one
// single property read. Run it alone, since it starts a manager:
//
//	go test ./steps -run '^$' -bench BenchmarkDBusStatus -benchtime 2000x
func BenchmarkDBusStatus(b *testing.B) {
	m := systemdtest.Start(b)
	u := writeTestUnit(b, m, "bench-status.service", systemdtest.UnitOptions{})
	m.DaemonReload(b)
	ctx := context.Background()
	d, err := Connect(ctx, ConnectOptions{Address: m.BusAddress})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := d.Do(ctx, OpStart, u.name); err != nil {
		b.Fatal(err)
	}
	conn, err := m.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	b.Run("Status", func(b *testing.B) {
		defer managerCPU(b, m.ManagerPID())()
		for b.Loop() {
			if _, err := d.Status(ctx, u.name); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetAll-Unit", func(b *testing.B) {
		defer managerCPU(b, m.ManagerPID())()
		for b.Loop() {
			if _, err := conn.GetUnitPropertiesContext(ctx, u.name); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetAll-Service", func(b *testing.B) {
		defer managerCPU(b, m.ManagerPID())()
		for b.Loop() {
			if _, err := conn.GetUnitTypePropertiesContext(ctx, u.name, "Service"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get-InvocationID", func(b *testing.B) {
		defer managerCPU(b, m.ManagerPID())()
		for b.Loop() {
			if _, err := conn.GetUnitPropertyContext(ctx, u.name, "InvocationID"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// managerCPU reports the manager's CPU time per operation (user + system,
// from /proc), the share of the single-threaded manager a read costs.
func managerCPU(b *testing.B, pid int) func() {
	if pid == 0 {
		return func() {}
	}
	bus := childNamed(pid, "dbus-daemon")
	start, busStart := cpuTime(pid), cpuTime(bus)
	return func() {
		b.ReportMetric(float64(cpuTime(pid)-start)/float64(b.N), "mgr-ns/op")
		if bus != 0 {
			b.ReportMetric(float64(cpuTime(bus)-busStart)/float64(b.N), "bus-ns/op")
		}
	}
}

// childNamed finds the child of pid whose command is name (the manager's
// dbus-daemon), or 0.
func childNamed(pid int, name string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if s[open+1:end] == name && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return child
		}
	}
	return 0
}

func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ = 100
}

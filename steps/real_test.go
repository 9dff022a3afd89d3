package steps

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/planner"
)

// Tests of the step types against a real systemd --user manager and
// testsvc units (see internal/systemdtest).

// realService is a testsvc unit under m with an HTTP health check, and
// the builder that runs steps on it through the D-Bus backend.
type realService struct {
	svc  *planner.Service
	unit testUnitFiles
	b    *builder
	sd   *DBus
}

type testUnitFiles struct {
	name, path, dir, bin string
	port                 int
}

func newRealService(t *testing.T, m *systemdtest.Manager, name string, opts systemdtest.UnitOptions) *realService {
	t.Helper()
	u := testUnitFiles{name: name, dir: t.TempDir(), port: systemdtest.FreePort(t), bin: m.Testsvc(t)}
	u.path = filepath.Join(m.UnitDir, name)
	m.WriteUnit(t, name, systemdtest.HTTPServiceUnit(name, u.bin, u.port, u.dir, opts))
	sd, err := Connect(t.Context(), ConnectOptions{Address: m.BusAddress, JobTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	svc := &planner.Service{Name: name, Unit: name, Health: &planner.Health{
		Kind: "http", URL: "http://127.0.0.1:" + strconv.Itoa(u.port) + "/health",
		Timeout: 10 * time.Second, Retries: 2, Interval: 200 * time.Millisecond,
	}}
	b := &builder{sd: sd, checkHealth: CheckHealth, pollInterval: 50 * time.Millisecond}
	return &realService{svc: svc, unit: u, b: b, sd: sd}
}

func (r *realService) do(t *testing.T, typ string, args map[string]cty.Value) (executor.Undo, error) {
	t.Helper()
	step := mustBuild(t, r.b, r.svc, &planner.Step{Name: typ, Type: typ, Args: args})
	return step.Do(t.Context(), &newTestEnv(r.svc).Env)
}

func (r *realService) status(t *testing.T) UnitState {
	t.Helper()
	st, err := r.sd.Status(t.Context(), r.unit.name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// get returns the body of a testsvc endpoint, waiting for it to listen.
func (r *realService) get(t *testing.T, path string) string {
	t.Helper()
	url := "http://127.0.0.1:" + strconv.Itoa(r.unit.port) + path
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var sb strings.Builder
			buf := make([]byte, 512)
			n, _ := resp.Body.Read(buf)
			sb.Write(buf[:n])
			resp.Body.Close()
			return strings.TrimSpace(sb.String())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: %v", url, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitFor polls path until it returns want or 10 s pass, and returns the
// last body.
func (r *realService) waitFor(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.get(t, path)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRealStepTypes(t *testing.T) {
	m := systemdtest.Start(t)

	t.Run("reload_or_restart reloads a unit with ExecReload", func(t *testing.T) {
		t.Parallel()
		r := newRealService(t, m, "steps-reload.service", systemdtest.UnitOptions{Reload: true})
		if _, err := r.do(t, TypeStart, nil); err != nil {
			t.Fatal(err)
		}
		before := r.status(t)
		r.get(t, "/health")
		undo, err := r.do(t, TypeReloadOrRestart, nil)
		if err != nil {
			t.Fatalf("reload_or_restart: %v", err)
		}
		after := r.status(t)
		if after.MainPID != before.MainPID || after.InvocationID != before.InvocationID {
			t.Errorf("reload replaced the process: %d/%s → %d/%s", before.MainPID, before.InvocationID, after.MainPID, after.InvocationID)
		}
		// The reload job ends when `kill -HUP` has run; testsvc counts the
		// signal a moment later.
		if got := r.waitFor(t, "/reloads", "1"); got != "1" {
			t.Errorf("/reloads = %q, want 1", got)
		}
		if _, ok := undo.(executor.Reopener); !ok {
			t.Errorf("undo %T is not a Reopener", undo)
		}
	})

	t.Run("reload_or_restart restarts a unit without ExecReload", func(t *testing.T) {
		t.Parallel()
		r := newRealService(t, m, "steps-restart.service", systemdtest.UnitOptions{})
		if _, err := r.do(t, TypeStart, nil); err != nil {
			t.Fatal(err)
		}
		before := r.status(t)
		if _, err := r.do(t, TypeReloadOrRestart, nil); err != nil {
			t.Fatalf("reload_or_restart: %v", err)
		}
		after := r.status(t)
		if after.InvocationID == before.InvocationID || after.MainPID == before.MainPID {
			t.Errorf("no new process: %d → %d", before.MainPID, after.MainPID)
		}
		if got := r.get(t, "/pid"); got != strconv.Itoa(int(after.MainPID)) {
			t.Errorf("/pid = %s, MainPID %d", got, after.MainPID)
		}
	})

	t.Run("a broken unit file is rolled back as the reference does", func(t *testing.T) {
		t.Parallel()
		r := newRealService(t, m, "steps-rollback.service", systemdtest.UnitOptions{})
		if _, err := r.do(t, TypeStart, nil); err != nil {
			t.Fatal(err)
		}
		good, err := os.ReadFile(r.unit.path)
		if err != nil {
			t.Fatal(err)
		}
		backupUndo, err := r.do(t, TypeBackupUnit, nil)
		if err != nil {
			t.Fatalf("backup_unit: %v", err)
		}
		// The deploy writes a unit whose program does not exist; the
		// restart's prepare sees NeedDaemonReload and reloads it.
		broken := strings.Replace(string(good), r.unit.bin, "/nonexistent/testsvc", 1)
		if err := os.WriteFile(r.unit.path, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		restartUndo, err := r.do(t, TypeRestart, nil)
		if err == nil {
			t.Fatal("restart of a unit with a missing program succeeded")
		}
		t.Logf("restart failed as expected: %v", err)
		reopen, ok := restartUndo.(executor.Reopener)
		if !ok {
			t.Fatalf("restart undo %T is not a Reopener", restartUndo)
		}
		// The executor's order: the Reopener's Undo, the undos below it,
		// then Reopen.
		env := newTestEnv(r.svc)
		if err := reopen.Undo(t.Context(), &env.Env); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if err := backupUndo.Undo(t.Context(), &env.Env); err != nil {
			t.Fatalf("restore unit file: %v", err)
		}
		if err := reopen.Reopen(t.Context(), &env.Env); err != nil {
			t.Fatalf("start, verify health: %v\n%s", err, env.output())
		}
		if got, _ := os.ReadFile(r.unit.path); string(got) != string(good) {
			t.Errorf("unit file not restored:\n%s", got)
		}
		st := r.status(t)
		if st.ActiveState != "active" || st.NeedDaemonReload {
			t.Errorf("after rollback: %s, NeedDaemonReload %v", describeState(st), st.NeedDaemonReload)
		}
		if got := r.get(t, "/health"); got != "ok" {
			t.Errorf("/health = %q", got)
		}
	})

	t.Run("stabilize catches a crash loop", func(t *testing.T) {
		t.Parallel()
		r := newRealService(t, m, "steps-flap.service", systemdtest.UnitOptions{
			Args:  []string{"-exit-after", "300ms"},
			Extra: []string{"Restart=always", "RestartSec=100ms"},
		})
		if _, err := r.do(t, TypeStart, nil); err != nil {
			t.Fatal(err)
		}
		_, err := r.do(t, TypeStabilize, map[string]cty.Value{"duration": cty.StringVal("30s")})
		if err == nil || !strings.Contains(err.Error(), "during stabilization") {
			t.Fatalf("stabilize = %v, want a flap", err)
		}
		t.Log(err)
		if _, err := r.do(t, TypeStop, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stabilize passes a steady unit", func(t *testing.T) {
		t.Parallel()
		r := newRealService(t, m, "steps-steady.service", systemdtest.UnitOptions{})
		if _, err := r.do(t, TypeStart, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := r.do(t, TypeStabilize, map[string]cty.Value{"duration": cty.StringVal("300ms")}); err != nil {
			t.Fatalf("stabilize: %v", err)
		}
	})
}

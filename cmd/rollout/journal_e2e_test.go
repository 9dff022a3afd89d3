package main

// The crash journal and `rollout recover` against a real systemd --user
// manager and the real rollout binary (issue 13 items 1, 2, 6, 8, 11;
// issue 12 item 6). docs/reliability.md maps each case to its test.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
)

// withEnv returns cmd with the variables in set replaced (an empty value
// removes the variable).
func withEnv(cmd *exec.Cmd, set map[string]string) *exec.Cmd {
	var env []string
	for _, kv := range cmd.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	cmd.Env = env
	return cmd
}

// snapshotsBeside lists the rollout snapshots (whole or partial) next to
// a working directory.
func snapshotsBeside(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".rollout-snapshot-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestKillDuringRsyncThenRecover: kill -9 of rollout while rsync copies a
// large release into the working directory. The deploy's undo was
// journaled, with its snapshot, before rsync changed anything: recover
// (with another state directory than the run's, found through the lock)
// puts the old code back, removes the snapshot, and the service is
// healthy on v1.
func TestKillDuringRsyncThenRecover(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	before := readTree(t, api.Dir)
	// A release big enough that the kill lands mid-copy: many files, so
	// the copy takes a while whatever the disk.
	const files = 20000
	p.release(api, "v2", nil)
	blob := strings.Repeat("x", 2048)
	for i := range files {
		writeFile(t, filepath.Join(api.Release, "blob", fmt.Sprintf("%05d", i)), blob)
	}
	plan := p.writePlan("plan.hcl", slowPipeline("20s")+api.serviceHCL(`type = "api"`))
	runState := filepath.Join(p.dir, "state-of-the-run")
	s := p.start("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", p.dir+"/release")
	withEnv(s.cmd, map[string]string{"XDG_STATE_HOME": runState})
	p.waitForEvent(s, 30*time.Second, stepEvent(executor.StepStart, "sso.api", "deploy"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		entries, _ := os.ReadDir(filepath.Join(api.Dir, "blob"))
		if n := len(entries); n > 0 && n < files {
			t.Logf("kill -9 with %d of %d files copied", n, files)
			break
		}
		if n := len(entries); n >= files || time.Now().After(deadline) {
			t.Fatalf("could not catch rsync mid-copy (%d of %d files)", n, files)
		}
		time.Sleep(2 * time.Millisecond)
	}
	s.signal(t, syscall.SIGKILL)
	s.wait(t, 10*time.Second)
	if runs, _ := executor.UnfinishedRuns(filepath.Join(runState, "rollout", "runs")); len(runs) != 0 {
		t.Fatalf("the journal is not keyed on the manager's bus")
	}

	r := p.rollout("recover", "--user")
	t.Logf("rollout recover said:\n%s", r.Stderr)
	if r.Code != 0 {
		t.Fatalf("recover: exit %d\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "restore "+api.Dir+" from snapshot") {
		t.Errorf("recover does not say it restores the working directory:\n%s", r.Stderr)
	}
	if got := readTree(t, api.Dir); !equalTreesE2E(got, before) {
		var extra []string
		for k := range got {
			if _, ok := before[k]; !ok {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], "...")
		}
		t.Errorf("the working directory does not hold the old code: %d files (want %d), extra %q, VERSION %q", len(got), len(before), extra, got["VERSION"])
	}
	if snaps := snapshotsBeside(t, api.Dir); len(snaps) != 0 {
		t.Errorf("snapshots left behind: %q", snaps)
	}
	if v, code := p.get(api, "/version"); v != "v1" || code != 200 {
		t.Errorf("after recover sso.api reports %q (%d), want v1", v, code)
	}
	if runs, err := executor.UnfinishedRuns(p.journals(), filepath.Join(runState, "rollout", "runs")); err != nil || len(runs) != 0 {
		t.Errorf("journals after recover: %d, %v", len(runs), err)
	}
}

func equalTreesE2E(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// readTree reads every regular file under dir, by relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKillDuringMigrationThenRecover: kill -9 of rollout while a migration
// runs; the migration left a child of its own (the shell's background
// work, in its process group). The migration dies with rollout, and
// recover kills what is left of its group before it runs the rollback
// command: the effects file reads "start, rolled-back", never "applied".
func TestKillDuringMigrationThenRecover(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	effects := filepath.Join(p.dir, "effects")
	childPID := filepath.Join(p.dir, "migration-child")
	// The inner shell is the migration's own child: Pdeathsig does not
	// reach it; only the process group does.
	migrate := fmt.Sprintf(`echo start >> %[1]s; sh -c 'echo $$ > %[2]s; sleep 3; echo applied >> %[1]s' & wait`, effects, childPID)
	plan := p.writePlan("plan.hcl", fmt.Sprintf(`
pipeline "api" {
  step "exec" "migrate" {
    command          = ["sh", "-c", %q]
    rollback_command = ["sh", "-c", "echo rolled-back >> %s"]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
`, migrate, effects)+api.serviceHCL(`type = "api"`))
	s := p.start("run", plan, "--user", "--events", p.events)
	deadline := time.Now().Add(30 * time.Second)
	var pid int
	for pid == 0 {
		if b, err := os.ReadFile(childPID); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the migration never started\n%s", s.stderr())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	s.signal(t, syscall.SIGKILL)
	s.wait(t, 10*time.Second)

	r := p.rollout("recover", "--user")
	t.Logf("rollout recover said:\n%s", r.Stderr)
	if r.Code != 0 {
		t.Fatalf("recover: exit %d\n%s", r.Code, r.Stderr)
	}
	if processAlive(pid) {
		t.Fatalf("the migration's child (pid %d) still runs after recover", pid)
	}
	if got := strings.Fields(readFile(t, effects)); !slices.Equal(got, []string{"start", "rolled-back"}) {
		t.Errorf("effects %q, want [start rolled-back]", got)
	}
	if _, code := p.get(api, "/health"); code != 200 {
		t.Errorf("sso.api health %d after recover", code)
	}
}

// processAlive: the process exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestInterruptedRecoverResumes: Ctrl-C twice while recover runs an undo
// (after it restored the code snapshot): recover stops after that undo,
// exits 130 and keeps the journal with each undo done marked. The next
// recover repeats none of them (the snapshot is gone; the slow rollback
// command runs once), reports no ROLLBACK_FAILED and exits 0 with the
// service healthy on v1.
func TestInterruptedRecoverResumes(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	originalUnit := readFile(t, api.UnitPath)
	p.release(api, "v2", nil)
	effects := filepath.Join(p.dir, "effects")
	plan := p.writePlan("plan.hcl", fmt.Sprintf(`
pipeline "api" {
  step "backup_unit" "backup" {}
  step "exec" "prepare" {
    command          = ["true"]
    rollback_command = ["sh", "-c", "echo rb-start >> %[1]s; while [ ! -e %[1]s.go ]; do sleep 0.05; done; echo rb-end >> %[1]s"]
  }
  step "rsync" "deploy" {
    from = "${run.deploy_path}/${service.name}"
    to   = service.working_dir
  }
  step "exec" "install_unit" {
    command = ["cp", "${service.working_dir}/unit.service", service.meta.unit_path]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = "20s" }
}
`, effects)+api.serviceHCL(`type = "api"`))
	s := p.start("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", p.dir+"/release")
	p.waitForEvent(s, 30*time.Second, stepEvent(executor.StepStart, "sso.api", "settle"))
	s.signal(t, syscall.SIGKILL)
	s.wait(t, 10*time.Second)

	rec := p.start("recover", "--user")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(readFileOr(effects), "rb-start") {
		if time.Now().After(deadline) {
			t.Fatalf("the rollback command never started\n%s", rec.stderr())
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec.signal(t, syscall.SIGINT)
	rec.signalAgain(t, syscall.SIGINT)
	// The rollback command ends only once both interrupts were handled.
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(rec.stderr(), "interrupted again") {
		if time.Now().After(deadline) {
			t.Fatalf("the second interrupt was not handled\n%s", rec.stderr())
		}
		time.Sleep(5 * time.Millisecond)
	}
	writeFile(t, effects+".go", "")
	if code := rec.wait(t, 60*time.Second); code != exitInterrupted {
		t.Fatalf("interrupted recover: exit %d, want 130\n%s", code, rec.stderr())
	}
	if !strings.Contains(rec.stderr(), "again to finish") {
		t.Errorf("the interrupted recover does not say to run it again:\n%s", rec.stderr())
	}

	r := p.rollout("recover", "--user")
	t.Logf("the second recover said:\n%s", r.Stderr)
	if r.Code != 0 || strings.Contains(r.Stderr, "ROLLBACK FAILED") {
		t.Fatalf("second recover: exit %d\n%s", r.Code, r.Stderr)
	}
	if got := strings.Fields(readFile(t, effects)); !slices.Equal(got, []string{"rb-start", "rb-end"}) {
		t.Errorf("rollback command effects %q: want it run exactly once", got)
	}
	if readFile(t, api.UnitPath) != originalUnit {
		t.Errorf("unit file not restored")
	}
	if v, code := p.get(api, "/version"); v != "v1" || code != 200 {
		t.Errorf("after recover sso.api reports %q (%d), want v1", v, code)
	}
	for _, e := range p.readEvents() {
		if e.Event == executor.RollbackFailed {
			t.Errorf("ROLLBACK_FAILED: %s", e.Error)
		}
	}
	if snaps := snapshotsBeside(t, api.Dir); len(snaps) != 0 {
		t.Errorf("snapshots left behind: %q", snaps)
	}
}

func readFileOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestSecondRunRefusedWhateverXDGRuntimeDir: the lock is keyed on the
// manager's bus, not on $XDG_RUNTIME_DIR: a second run against the same
// manager with XDG_RUNTIME_DIR unset, or pointing elsewhere, is refused.
func TestSecondRunRefusedWhateverXDGRuntimeDir(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	plan := p.writePlan("plan.hcl", slowPipeline("20s")+api.serviceHCL(`type = "api"`)+`plan "sso" {}`)
	first := p.start("run", plan, "--user", "--events", p.events)
	p.waitForEvent(first, 30*time.Second, stepEvent(executor.StepStart, "sso.api", "settle"))
	before := p.state(api)
	for _, xdg := range []string{"", t.TempDir()} {
		cmd := withEnv(p.command("run", plan, "--user", "--events", p.events), map[string]string{"XDG_RUNTIME_DIR": xdg})
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != exitUsage || !strings.Contains(string(out), "another rollout run holds") {
			t.Errorf("XDG_RUNTIME_DIR=%q: second run exit %d, want 2 refused\n%s", xdg, code, out)
		}
	}
	if p.state(api).InvocationID != before.InvocationID {
		t.Errorf("a second run restarted the service")
	}
	first.signal(t, syscall.SIGINT)
	first.signalAgain(t, syscall.SIGINT)
	first.wait(t, 30*time.Second)
}

// TestRollbackJobsGetTheirOwnBound: `restart { timeout = "2s" }` on a unit
// that needs 3 s to start: the restart fails, and the rollback's start,
// bounded longer than the step's job, brings the unit back: exit 1, not 3.
func TestRollbackJobsGetTheirOwnBound(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{Extra: []string{"ExecStartPre=/bin/sleep 3"}})
	p.startAll()
	plan := p.writePlan("plan.hcl", `
pipeline "api" {
  step "restart" "restart" { timeout = "2s" }
  step "health_check" "verify" {}
}
`+api.serviceHCL(`type = "api"`))
	r := p.rollout("run", plan, "--user", "--events", p.events)
	if r.Code != exitFailed {
		t.Fatalf("exit %d, want 1 (restart failed, rolled back)\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if st := p.state(api); st.ActiveState != "active" {
		t.Errorf("after the rollback the unit is %s", st.ActiveState)
	}
	if _, code := p.get(api, "/health"); code != 200 {
		t.Errorf("health %d after the rollback", code)
	}
}

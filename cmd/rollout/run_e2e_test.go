package main

// `rollout run` against a real systemd --user manager: the reference's
// whole per-service flow and rollback flow (issue 3's "must show" list).

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
)

// apiPipeline is the reference's per-service flow: pre-check, backup the
// unit, deploy, install the release's unit file, migrate, restart (reload
// where the unit can), verify, settle.
const apiPipeline = `
pipeline "api" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    to   = service.working_dir
  }
  step "exec" "install_unit" {
    if      = run.deploy
    command = ["cp", "${service.working_dir}/unit.service", service.meta.unit_path]
  }
  step "exec" "migrate" {
    if      = !run.skip_migrations
    command = ["test", "!", "-e", "${service.working_dir}/FAIL_MIGRATION"]
    dir     = service.working_dir
    timeout = "10s"
  }
  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = "300ms" }
}
`

// threeTier is the reference's first dependency example: a database and a
// cache, then the API that depends on both.
func threeTier(t *testing.T) (*platform, []*testService) {
	p := newPlatform(t)
	db := p.addService("sso.postgresql", "v1", systemdtest.UnitOptions{})
	cache := p.addService("sso.redis", "v1", systemdtest.UnitOptions{})
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{Reload: false})
	p.startAll()
	return p, []*testService{db, cache, api}
}

func threeTierPlan(p *platform, svcs []*testService) string {
	db, cache, api := svcs[0], svcs[1], svcs[2]
	return p.writePlan("plan.hcl", apiPipeline+
		api.serviceHCL(`type = "api"
depends_on = ["sso.postgresql", "sso.redis"]`)+
		db.serviceHCL(`type = "api"`)+
		cache.serviceHCL(`type = "api"`)+
		`plan "sso" {}`)
}

func TestRunRestartsInDependencyOrder(t *testing.T) {
	p, svcs := threeTier(t)
	plan := threeTierPlan(p, svcs)
	before := map[string]unitState{}
	for _, s := range svcs {
		before[s.Name] = p.state(s)
	}

	r := p.rollout("run", plan, "--user", "--events", p.events)
	if r.Code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, s := range svcs {
		after := p.state(s)
		if after.InvocationID == before[s.Name].InvocationID {
			t.Errorf("%s: InvocationID unchanged (%s): not restarted", s.Name, after.InvocationID)
		}
		if after.ActiveState != "active" {
			t.Errorf("%s: %s after the run", s.Name, after.ActiveState)
		}
		if _, code := p.get(s, "/health"); code != 200 {
			t.Errorf("%s: health %d after the run", s.Name, code)
		}
	}

	evs := p.readEvents()
	got := eventNames(evs, func(e executor.Event) bool {
		return e.Event != executor.StepStart && e.Event != executor.StepSuccess
	})
	want := []string{
		"RUN_START",
		"SERVICE_RESTART_START sso.postgresql", "SERVICE_RESTART_SUCCESS sso.postgresql",
		"SERVICE_RESTART_START sso.redis", "SERVICE_RESTART_SUCCESS sso.redis",
		"SERVICE_RESTART_START sso.api", "SERVICE_RESTART_SUCCESS sso.api",
		"RUN_SUCCESS",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	// Every step of the API's pipeline that applies to this run, in order.
	var apiSteps []string
	for _, e := range evs {
		if e.Service == "sso.api" && e.Event == executor.StepSuccess {
			apiSteps = append(apiSteps, e.Step)
		}
	}
	if want := []string{"precheck", "backup", "migrate", "restart", "verify", "settle"}; !slices.Equal(apiSteps, want) {
		t.Errorf("sso.api steps = %q, want %q", apiSteps, want)
	}
	for _, e := range evs {
		if e.RunID == "" || e.Time.IsZero() {
			t.Errorf("event without run_id or time: %+v", e)
		}
	}
	// A successful run leaves no code snapshot behind.
	if leftovers, _ := os.ReadDir(p.dir + "/srv"); len(leftovers) != len(svcs) {
		t.Errorf("srv holds %d entries, want %d (snapshots left behind?)", len(leftovers), len(svcs))
	}
}

func TestRunReloadsWhereTheUnitCan(t *testing.T) {
	p := newPlatform(t)
	reloadable := p.addService("ml.reloadable", "v1", systemdtest.UnitOptions{Reload: true})
	plain := p.addService("ml.plain", "v1", systemdtest.UnitOptions{})
	p.startAll()
	plan := p.writePlan("plan.hcl", apiPipeline+
		reloadable.serviceHCL(`type = "api"`)+plain.serviceHCL(`type = "api"`))
	r0, p0 := p.state(reloadable), p.state(plain)

	r := p.rollout("run", plan, "--user", "--events", p.events, "--skip-migrations", "--json")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// --json streams the events on stdout, one object a line: the same
	// lifecycle as the events log (which has no step log lines).
	streamed, bad, err := executor.ReadEvents(strings.NewReader(r.Stdout))
	if err != nil || bad > 0 || len(streamed) == 0 {
		t.Fatalf("--json output: %d events, %d bad lines, err %v:\n%s", len(streamed), bad, err, r.Stdout)
	}
	keep := func(e executor.Event) bool { return e.Event != executor.StepLog && e.Event != executor.StepAttempt }
	if got, want := eventNames(streamed, keep), eventNames(p.readEvents(), nil); !slices.Equal(got, want) {
		t.Errorf("--json stream differs from the events log:\n got %q\nwant %q", got, want)
	}
	r1, p1 := p.state(reloadable), p.state(plain)
	if r1.MainPID != r0.MainPID || r1.InvocationID != r0.InvocationID {
		t.Errorf("reloadable unit was restarted (MainPID %d→%d), want a reload", r0.MainPID, r1.MainPID)
	}
	if n, _ := p.get(reloadable, "/reloads"); n != "1" {
		t.Errorf("reloadable unit saw %q reloads, want 1", n)
	}
	if p1.InvocationID == p0.InvocationID || p1.MainPID == p0.MainPID {
		t.Errorf("unit without ExecReload was not restarted (MainPID %d→%d)", p0.MainPID, p1.MainPID)
	}
}

func TestRunDeploysANewVersion(t *testing.T) {
	p, svcs := threeTier(t)
	api := svcs[2]
	p.release(api, "v2", nil)
	plan := threeTierPlan(p, svcs)

	r := p.rollout("run", plan, "--user", "--events", p.events, "--service", "sso.api",
		"--deploy", "--deploy-path", p.dir+"/release")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if v, _ := p.get(api, "/version"); v != "v2" {
		t.Errorf("sso.api reports %q after the deploy, want v2\n%s", v, r.Stdout)
	}
	// --service restarts only the named service.
	if got := eventNames(p.readEvents(), func(e executor.Event) bool { return e.Event == executor.ServiceRestartStart }); !slices.Equal(got, []string{"SERVICE_RESTART_START sso.api"}) {
		t.Errorf("restarted %q, want only sso.api", got)
	}
}

func TestRunRollsBackAFailedRelease(t *testing.T) {
	p, svcs := threeTier(t)
	api := svcs[2]
	originalUnit := readFile(t, api.UnitPath)
	// The broken release ships code that is unhealthy and a unit file of
	// its own (another start command), as a real release can.
	broken := api.Opts
	broken.Args = []string{"-ready-delay", "10ms"}
	p.release(api, "v2-broken", map[string]string{
		"UNHEALTHY":    "",
		"unit.service": systemdtest.HTTPServiceUnit(api.Name, p.bin, api.Port, api.Dir, broken),
	})
	plan := threeTierPlan(p, svcs)
	before := p.state(api)

	r := p.rollout("run", plan, "--user", "--events", p.events, "--service", "sso.api",
		"--deploy", "--deploy-path", p.dir+"/release")
	if r.Code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	after := p.state(api)
	if v, code := p.get(api, "/version"); v != "v1" || code != 200 {
		t.Errorf("after rollback sso.api reports %q (status %d), want v1", v, code)
	}
	if _, code := p.get(api, "/health"); code != 200 {
		t.Errorf("after rollback sso.api health = %d, want 200", code)
	}
	if _, err := os.Stat(api.Dir + "/UNHEALTHY"); err == nil {
		t.Errorf("the broken release's UNHEALTHY file is still in the working dir")
	}
	if got := readFile(t, api.UnitPath); got != originalUnit {
		t.Errorf("unit file not restored:\n%s\nwant:\n%s", got, originalUnit)
	}
	if after.ActiveState != "active" || after.InvocationID == before.InvocationID {
		t.Errorf("after rollback: %s, InvocationID %s (before %s); want active and restarted", after.ActiveState, after.InvocationID, before.InvocationID)
	}
	evs := p.readEvents()
	got := eventNames(evs, func(e executor.Event) bool {
		return e.Phase == "" && e.Event != executor.StepStart && e.Event != executor.StepSuccess
	})
	want := []string{
		"RUN_START", "SERVICE_RESTART_START sso.api", "STEP_FAILED sso.api",
		"ROLLBACK_START sso.api", "ROLLBACK_SUCCESS sso.api", "SERVICE_RESTART_FAILED sso.api", "RUN_FAILED",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	// The rollback reports each of its steps: stop, restore code, restore
	// the unit file and daemon-reload, start and verify.
	var rollback []string
	for _, e := range evs {
		if e.Phase == "rollback" && e.Event == executor.StepSuccess {
			rollback = append(rollback, e.Step+": "+e.Message)
		}
	}
	joined := strings.Join(rollback, "\n")
	for _, want := range []string{"stop " + api.Unit, "snapshot", ".backup", "start " + api.Unit} {
		if !strings.Contains(joined, want) {
			t.Errorf("rollback steps lack %q:\n%s", want, joined)
		}
	}
	if stop, start := strings.Index(joined, "stop "+api.Unit), strings.Index(joined, "start "+api.Unit); stop < 0 || start < stop {
		t.Errorf("rollback does not stop before it starts:\n%s", joined)
	}
}

func TestRunFailedMigrationRollsBack(t *testing.T) {
	p, svcs := threeTier(t)
	api := svcs[2]
	p.release(api, "v2", map[string]string{"FAIL_MIGRATION": ""})
	plan := threeTierPlan(p, svcs)
	deploy := []string{"run", plan, "--user", "--events", p.events, "--service", "sso.api", "--deploy", "--deploy-path", p.dir + "/release"}

	r := p.rollout(deploy...)
	if r.Code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if v, _ := p.get(api, "/version"); v != "v1" {
		t.Errorf("after the failed migration sso.api reports %q, want v1 (code restored)", v)
	}
	if !slices.Contains(eventNames(p.readEvents(), nil), "ROLLBACK_SUCCESS sso.api") {
		t.Errorf("no ROLLBACK_SUCCESS for the failed migration")
	}

	// --skip-migrations skips the failing migration: the deploy goes through.
	r = p.rollout(append(deploy, "--skip-migrations")...)
	if r.Code != 0 {
		t.Fatalf("with --skip-migrations: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if v, _ := p.get(api, "/version"); v != "v2" {
		t.Errorf("with --skip-migrations sso.api reports %q, want v2", v)
	}
}

func TestRunUnhealthyBeforeRestartAborts(t *testing.T) {
	p, svcs := threeTier(t)
	db, api := svcs[0], svcs[2]
	writeFile(t, db.Dir+"/UNHEALTHY", "")
	plan := threeTierPlan(p, svcs)
	before := map[string]unitState{}
	for _, s := range svcs {
		before[s.Name] = p.state(s)
	}
	unitBefore := readFile(t, api.UnitPath)

	r := p.rollout("run", plan, "--user", "--events", p.events)
	if r.Code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, s := range svcs {
		if got := p.state(s).InvocationID; got != before[s.Name].InvocationID {
			t.Errorf("%s was restarted although the run aborted at the pre-check", s.Name)
		}
	}
	if readFile(t, api.UnitPath) != unitBefore {
		t.Errorf("unit file changed")
	}
	names := eventNames(p.readEvents(), nil)
	if slices.Contains(names, "ROLLBACK_START sso.postgresql") {
		t.Errorf("a failed pre-check changed nothing, yet a rollback ran: %q", names)
	}
	for _, want := range []string{"SERVICE_RESTART_FAILED sso.postgresql", "SERVICE_SKIPPED sso.api", "RUN_FAILED"} {
		if !slices.Contains(names, want) {
			t.Errorf("events lack %q: %q", want, names)
		}
	}

	// --force skips the checks: the unhealthy service is restarted anyway.
	r = p.rollout("run", plan, "--user", "--events", p.events, "--force", "--service", "sso.postgresql")
	if r.Code != 0 {
		t.Fatalf("--force: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if p.state(db).InvocationID == before[db.Name].InvocationID {
		t.Errorf("--force did not restart the unhealthy service")
	}
}

func TestRunDryRunChangesNothing(t *testing.T) {
	p, svcs := threeTier(t)
	api := svcs[2]
	// Every service gets a release: the dry run deploys all three, and an
	// empty release directory would be refused by preflight.
	for _, s := range svcs {
		p.release(s, "v2", nil)
	}
	plan := threeTierPlan(p, svcs)
	before := map[string]unitState{}
	for _, s := range svcs {
		before[s.Name] = p.state(s)
	}
	unitBefore := readFile(t, api.UnitPath)

	r := p.rollout("run", plan, "--user", "--events", p.events, "--dry-run", "--deploy", "--deploy-path", p.dir+"/release")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, s := range svcs {
		if p.state(s).InvocationID != before[s.Name].InvocationID {
			t.Errorf("%s was restarted by a dry run", s.Name)
		}
	}
	if v, _ := p.get(api, "/version"); v != "v1" {
		t.Errorf("a dry run deployed: version %q", v)
	}
	if readFile(t, api.UnitPath) != unitBefore {
		t.Errorf("a dry run changed the unit file")
	}
	if _, err := os.Stat(p.events); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote the events log (stat: %v)", err)
	}
	if _, err := os.Stat(api.UnitPath + ".backup"); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote a unit backup")
	}
	// It prints every step with its resolved arguments, and checks units.
	for _, want := range []string{
		"sso.api (" + api.Unit + ")",
		fmt.Sprintf(`from = "%s/release/sso.api"`, p.dir),
		fmt.Sprintf(`to = "%s"`, api.Dir),
		"unit: loaded, active/running",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r.Stdout)
		}
	}
}

// A one-way migration leaves the old version unable to start: the rollback
// cannot succeed, and a person must act. The run says so loudly, with the
// commands to run, and exits 3.
func TestRunFailedRollbackExits3(t *testing.T) {
	p := newPlatform(t)
	block := p.dir + "/schema-v2"
	api := p.addService("sso.api", "v1", systemdtest.UnitOptions{
		// The old version refuses to start on the new schema.
		Extra: []string{"ExecStartPre=/usr/bin/test ! -e " + block},
	})
	p.startAll()
	p.release(api, "v2-broken", map[string]string{"UNHEALTHY": ""})
	api.Meta = map[string]string{"schema": block}
	plan := p.writePlan("plan.hcl", `
pipeline "api" {
  step "backup_unit" "backup" {}
  step "rsync" "deploy" {
    from = "${run.deploy_path}/${service.name}"
    to   = service.working_dir
  }
  step "exec" "migrate" {
    command = ["touch", service.meta.schema]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
`+api.serviceHCL(`type = "api"`))

	r := p.rollout("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", p.dir+"/release")
	if r.Code != exitRollbackFailed {
		t.Fatalf("exit %d, want 3\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "ROLLBACK FAILED") {
		t.Errorf("stderr does not say ROLLBACK FAILED loudly:\n%s", r.Stderr)
	}
	var failed *executor.Event
	for _, e := range p.readEvents() {
		if e.Event == executor.RollbackFailed {
			e := e
			failed = &e
		}
	}
	if failed == nil {
		t.Fatalf("no ROLLBACK_FAILED event")
	}
	if failed.Service != "sso.api" || failed.Unit != api.Unit || failed.Error == "" {
		t.Errorf("ROLLBACK_FAILED lacks service, unit or error: %+v", failed)
	}
	// What a person must do: the reference's manual rollback, for this unit.
	for _, want := range []string{
		"systemctl --user stop " + api.Unit,
		"systemctl --user daemon-reload",
		"systemctl --user start " + api.Unit,
	} {
		if !strings.Contains(failed.Message, want) {
			t.Errorf("ROLLBACK_FAILED message lacks %q:\n%s", want, failed.Message)
		}
	}
	// The rest of the rollback still ran: the code is back.
	if v := strings.TrimSpace(readFile(t, api.Dir+"/VERSION")); v != "v1" {
		t.Errorf("code not restored: VERSION %q", v)
	}
}

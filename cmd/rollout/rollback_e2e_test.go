package main

// `rollout rollback` and `rollout releases` against a real systemd --user
// manager: services that run from BASE/current, deployed with the release
// step, switched back to an earlier release and restarted.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
)

const releasePipeline = `
pipeline "api" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "release" "deploy" {
    if     = run.deploy
    from   = "${run.deploy_path}/${service.name}"
    shared = ["data"]
  }
  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = "200ms" }
}
`

const firstRelease = "20260101T000000Z-000001"

// releasePlatform is two services (web depends on api) that run from
// BASE/current, at v1.
func releasePlatform(t *testing.T) (*platform, []*testService, string) {
	p := newPlatform(t)
	var svcs []*testService
	for _, name := range []string{"app.api", "app.web"} {
		// Restarted more than systemd's default 5 times in 10 s; the
		// [Service] spelling of the start limit is still honoured.
		s := p.addService(name, "v1", systemdtest.UnitOptions{Extra: []string{"StartLimitInterval=0"}})
		base := filepath.Join(p.dir, "apps", name)
		writeFile(t, filepath.Join(base, "releases", firstRelease, "VERSION"), "v1\n")
		writeFile(t, filepath.Join(base, "shared", "data", "kept"), "across releases\n")
		if err := os.Symlink("releases/"+firstRelease, filepath.Join(base, "current")); err != nil {
			t.Fatal(err)
		}
		s.Dir = filepath.Join(base, "current")
		p.m.WriteUnitFile(t, s.Unit, s.unitText(p.bin))
		svcs = append(svcs, s)
	}
	p.startAll()
	plan := p.writePlan("plan.hcl", releasePipeline+
		svcs[0].serviceHCL(`type = "api"`)+
		svcs[1].serviceHCL(`type = "api"
depends_on = ["app.api"]`))
	return p, svcs, plan
}

func (p *platform) deploy(plan, version string) {
	p.t.Helper()
	for _, s := range p.services {
		p.release(s, version, nil)
	}
	r := p.rollout("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", filepath.Join(p.dir, "release"))
	if r.Code != 0 {
		p.t.Fatalf("deploy %s: exit %d\n%s\n%s", version, r.Code, r.Stdout, r.Stderr)
	}
	p.assertServing(version)
}

func (p *platform) assertServing(version string) {
	p.t.Helper()
	for _, s := range p.services {
		if v, code := p.get(s, "/version"); v != version || code != 200 {
			p.t.Errorf("%s serves %q (HTTP %d), want %s", s.Name, v, code, version)
		}
		if v, code := p.get(s, "/health"); code != 200 {
			p.t.Errorf("%s /health: %q (HTTP %d)", s.Name, v, code)
		}
	}
}

// releasesJSON runs `rollout releases --json`.
func (p *platform) releasesJSON(plan string) map[string]serviceReleases {
	p.t.Helper()
	r := p.rollout("releases", plan, "--json")
	if r.Code != 0 {
		p.t.Fatalf("releases: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var doc struct{ Services []serviceReleases }
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		p.t.Fatalf("releases --json: %v\n%s", err, r.Stdout)
	}
	out := map[string]serviceReleases{}
	for _, s := range doc.Services {
		out[s.Service] = s
	}
	return out
}

// versionOf says which version a release of s holds.
func versionOf(t *testing.T, s serviceReleases, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Base, "releases", id, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestRollbackE2E(t *testing.T) {
	p, svcs, plan := releasePlatform(t)
	p.deploy(plan, "v2")
	for _, s := range svcs {
		if got := readFile(t, filepath.Join(s.Dir, "data", "kept")); got != "across releases\n" {
			t.Errorf("%s: shared data through current: %q", s.Name, got)
		}
	}

	// --dry-run says where each service goes and changes nothing.
	r := p.rollout("rollback", plan, "--user", "--events", p.events, "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "-> "+firstRelease) || !strings.Contains(r.Stdout, "switch (switch_release)") {
		t.Fatalf("rollback --dry-run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	p.assertServing("v2")

	// The rollback: v1 serves again, in dependency order, and v2 is bad.
	evsBefore := len(p.readEvents())
	r = p.rollout("rollback", plan, "--user", "--events", p.events)
	if r.Code != 0 {
		t.Fatalf("rollback: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	p.assertServing("v1")
	evs := p.readEvents()[evsBefore:]
	got := eventNames(evs, func(e executor.Event) bool { return e.Event == "SERVICE_RESTART_SUCCESS" || e.Event == "RUN_SUCCESS" })
	if want := []string{"SERVICE_RESTART_SUCCESS app.api", "SERVICE_RESTART_SUCCESS app.web", "RUN_SUCCESS"}; !slices.Equal(got, want) {
		t.Errorf("rollback events %v, want %v", got, want)
	}
	rels := p.releasesJSON(plan)
	for _, s := range svcs {
		sr := rels[s.Name]
		if len(sr.Releases) != 2 || sr.Current != firstRelease {
			t.Fatalf("%s releases after rollback: %+v", s.Name, sr)
		}
		v2 := sr.Releases[1]
		if versionOf(t, sr, v2.ID) != "v2" || v2.Bad == "" || v2.Current {
			t.Errorf("%s: the release left (v2) is %+v, want it marked bad", s.Name, v2)
		}
	}

	// A new good release, then a second rollback: it skips the bad v2
	// and goes back to v1.
	p.deploy(plan, "v3")
	r = p.rollout("rollback", plan, "--user", "--events", p.events, "--service", "app.api")
	if r.Code != 0 {
		t.Fatalf("second rollback: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	api, web := svcs[0], svcs[1]
	if v, _ := p.get(api, "/version"); v != "v1" {
		t.Errorf("app.api serves %q after the second rollback, want v1 (v2 is bad)", v)
	}
	if v, _ := p.get(web, "/version"); v != "v3" {
		t.Errorf("app.web serves %q: it was not selected, want v3", v)
	}

	// Text listing.
	r = p.rollout("releases", plan, "--service", "app.api")
	if r.Code != 0 || strings.Count(r.Stdout, "bad: rolled back to "+firstRelease) != 2 || !strings.Contains(r.Stdout, firstRelease+"  current") {
		t.Errorf("releases: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}

	// Nothing left to go back to for app.api: refused, nothing touched.
	r = p.rollout("rollback", plan, "--user", "--events", p.events, "--service", "app.api")
	if r.Code != exitUsage || !strings.Contains(r.Stderr, "no good release before") {
		t.Errorf("rollback with nothing to go back to: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestRollbackOfTheRollback: when the release a rollback goes back to
// does not come up healthy, the rollback's own undo switches the service
// back to the release it was on, restarts it, and nothing is marked bad.
func TestRollbackOfTheRollback(t *testing.T) {
	p, svcs, plan := releasePlatform(t)
	p.deploy(plan, "v2")
	api := svcs[0]
	rels := p.releasesJSON(plan)[api.Name]
	v2 := rels.Current
	writeFile(t, filepath.Join(rels.Base, "releases", firstRelease, "UNHEALTHY"), "v1 cannot start any more\n")

	r := p.rollout("rollback", plan, "--user", "--events", p.events, "--service", api.Name)
	if r.Code != exitFailed {
		t.Fatalf("rollback to an unhealthy release: exit %d, want 1\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if v, code := p.get(api, "/version"); v != "v2" || code != 200 {
		t.Errorf("app.api serves %q (HTTP %d), want v2 again", v, code)
	}
	if _, code := p.get(api, "/health"); code != 200 {
		t.Errorf("app.api unhealthy after the rollback of its rollback")
	}
	after := p.releasesJSON(plan)[api.Name]
	if after.Current != v2 {
		t.Errorf("current = %s, want %s", after.Current, v2)
	}
	for _, rel := range after.Releases {
		if rel.Bad != "" {
			t.Errorf("release %s marked bad by a rollback that did not stand", rel.ID)
		}
	}
	evs := p.readEvents()
	if got := serviceEvents(evs, api.Name); !slices.Contains(got, "ROLLBACK_SUCCESS") {
		t.Errorf("app.api events %v, want ROLLBACK_SUCCESS", got)
	}
}

// TestReleaseCrashThenRecover: a run killed (SIGKILL) after its release
// step switched `current` and the service restarted on v2; `rollout
// recover` switches `current` back from the journal, removes the new
// release and restarts the service on v1.
func TestReleaseCrashThenRecover(t *testing.T) {
	p, svcs, _ := releasePlatform(t)
	api := svcs[0]
	plan := p.writePlan("slow.hcl", strings.Replace(releasePipeline, `duration = "200ms"`, `duration = "20s"`, 1)+api.serviceHCL(`type = "api"`))
	p.release(api, "v2", nil)
	s := p.start("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", filepath.Join(p.dir, "release"))
	p.waitForEvent(s, 30*time.Second, stepEvent(executor.StepSuccess, api.Name, "restart"))
	s.signal(t, syscall.SIGKILL)
	s.wait(t, 10*time.Second)
	p.waitHealthy(api)
	if v, _ := p.get(api, "/version"); v != "v2" {
		t.Fatalf("before recovery app.api serves %q, want v2 (the kill came too early?)", v)
	}

	r := p.rollout("recover", "--user")
	if r.Code != 0 {
		t.Fatalf("recover: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "point "+filepath.Join(p.dir, "apps", api.Name, "current")+" back at releases/"+firstRelease) {
		t.Errorf("recover does not say it switches current back:\n%s", r.Stderr)
	}
	if v, code := p.get(api, "/version"); v != "v1" || code != 200 {
		t.Errorf("after recover app.api serves %q (HTTP %d), want v1", v, code)
	}
	entries, _ := os.ReadDir(filepath.Join(p.dir, "apps", api.Name, "releases"))
	if len(entries) != 1 || entries[0].Name() != firstRelease {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("releases after recover: %v, want only %s", names, firstRelease)
	}
}

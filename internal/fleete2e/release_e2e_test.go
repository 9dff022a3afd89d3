package fleete2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/fakehost"
)

// relUnit runs from /srv/i10shop/current and fails its start job when the
// release's VERSION says broken.
const relUnit = `[Service]
Type=exec
WorkingDirectory=/srv/i10shop/current
ExecStartPre=/bin/sh -c 'test "$(cat VERSION)" != broken'
ExecStart=/bin/sleep 600
`

// relFirst is the release each host starts from.
const relFirst = "20000101T000000Z-000000"

// newReleaseFleet starts two hosts whose i10shop service runs release
// relFirst of /srv/i10shop, and writes a plan that deploys it with the
// release step.
func newReleaseFleet(t *testing.T) (*fleet, string) {
	t.Helper()
	f := &fleet{t: t, dir: t.TempDir()}
	f.events = filepath.Join(f.dir, "events.jsonl")
	for _, name := range []string{"rel1", "rel2"} {
		h := fakehost.Start(t, name)
		f.hosts = append(f.hosts, h)
		h.Stdout(t, `set -e
mkdir -p /srv/i10shop/releases/`+relFirst+` /srv/i10shop/shared/uploads
echo v0 >/srv/i10shop/releases/`+relFirst+`/VERSION
ln -s releases/`+relFirst+` /srv/i10shop/current
cat >/srv/cfg/systemd/user/i10shop.service <<'EOF'
`+relUnit+`EOF
systemctl --user daemon-reload && systemctl --user start i10shop.service`)
	}
	var b strings.Builder
	for _, h := range f.hosts {
		b.WriteString(h.HCL())
	}
	b.WriteString(`
variable "slow" {
  default = "0"
}

defaults {
  health_timeout  = "2s"
  health_retries  = 2
  health_interval = "200ms"
}

pipeline "default" {
  step "release" "deploy" {
    if     = run.deploy
    from   = "${run.deploy_path}/${host.name}"
    to     = "/srv/i10shop"
    shared = ["uploads"]
  }
  step "exec" "slow" {
    if      = var.slow == "1"
    command = ["sh", "-c", "touch /srv/i10shop-slow; sleep 30"]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}

service "i10shop" {
  unit        = "i10shop.service"
  hosts       = ["rel1", "rel2"]
  working_dir = "/srv/i10shop/current"
}

plan "shop" {
  max_parallel = 2
  on_failure   = "continue"
}
`)
	path := filepath.Join(f.dir, "shop.hcl")
	writeFile(t, path, b.String())
	return f, path
}

// current reads the release /srv/i10shop/current points at on h, and the
// VERSION it serves.
func current(t *testing.T, h *fakehost.Host) (id, version string) {
	t.Helper()
	out := strings.TrimSpace(h.Stdout(t, "readlink /srv/i10shop/current; cat /srv/i10shop/current/VERSION"))
	link, ver, _ := strings.Cut(out, "\n")
	return strings.TrimPrefix(link, "releases/"), ver
}

// TestFleetReleasesE2E: the release step, `rollout releases`, `rollout
// status` and `rollout rollback --host` on instances on hosts. Each host
// gets its own release under its own /srv (and nothing reaches the
// controller's); a broken release on one host is undone there; a rollback
// narrowed to one host switches only that host back and marks the release
// it left bad there.
func TestFleetReleasesE2E(t *testing.T) {
	t.Parallel()
	f, plan := newReleaseFleet(t)
	rel1, rel2 := f.host("rel1"), f.host("rel2")
	src := filepath.Join(f.dir, "src")
	for _, h := range []string{"rel1", "rel2"} {
		writeFile(t, filepath.Join(src, "v1", h, "VERSION"), "v1-"+h+"\n")
		writeFile(t, filepath.Join(src, "v1", h, "uploads", "from-build"), "seed\n")
		v2 := "v2-" + h
		if h == "rel2" {
			v2 = "broken"
		}
		writeFile(t, filepath.Join(src, "v2", h, "VERSION"), v2+"\n")
	}

	// 1. A deploy: a new release on each host, from that host's source.
	res := f.rollout("run", plan, "--user", "--events", f.events, "--no-tty", "--deploy", "--deploy-path", filepath.Join(src, "v1"))
	if res.Code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	v1 := map[string]string{}
	for _, h := range f.hosts {
		id, ver := current(t, h)
		if id == relFirst || ver != "v1-"+h.Name {
			t.Fatalf("%s after deploy: current %s serving %q, want a new release serving v1-%s", h.Name, id, ver, h.Name)
		}
		v1[h.Name] = id
		// The shared path is a link into the host's shared/, which kept
		// what was there (the build's copy is not used when shared/ has it).
		if got := strings.TrimSpace(h.Stdout(t, "readlink /srv/i10shop/current/uploads; ls /srv/i10shop/shared/uploads")); got != "../../shared/uploads" {
			t.Errorf("%s: uploads link and shared/uploads: %q", h.Name, got)
		}
		if got := strings.TrimSpace(h.Stdout(t, "ls -A /srv/i10shop/releases")); strings.Contains(got, ".partial") {
			t.Errorf("%s: a partial copy was left: %q", h.Name, got)
		}
	}
	if _, err := os.Stat("/srv/i10shop"); err == nil {
		t.Error("/srv/i10shop exists on the controller: the release was made here")
	}

	// 2. rollout releases reads each host's releases.
	res = f.rollout("releases", plan, "--json")
	if res.Code != 0 {
		t.Fatalf("releases: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	var listed struct {
		Services []struct {
			Service, Host, Current string
			Releases               []struct{ ID string }
		}
	}
	if err := json.Unmarshal([]byte(res.Stdout), &listed); err != nil {
		t.Fatalf("releases --json: %v\n%s", err, res.Stdout)
	}
	if len(listed.Services) != 2 {
		t.Fatalf("releases lists %d instances, want 2:\n%s", len(listed.Services), res.Stdout)
	}
	for _, s := range listed.Services {
		if s.Service != "i10shop@"+s.Host || s.Current != v1[s.Host] || len(s.Releases) != 2 {
			t.Errorf("releases of %s: %+v, want current %s of 2", s.Service, s, v1[s.Host])
		}
	}

	// 3. rollout status reads each host's manager and release.
	res = f.rollout("status", plan, "--user", "--json", "--events", f.events, "--host", "rel2")
	if res.Code != 0 {
		t.Fatalf("status: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	var st struct {
		Services []struct {
			Name, Host, Release, ActiveState string
			Healthy                          bool
		}
	}
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, res.Stdout)
	}
	if len(st.Services) != 1 || st.Services[0].Host != "rel2" || st.Services[0].Release != v1["rel2"] || !st.Services[0].Healthy {
		t.Errorf("status --host rel2: %+v, want i10shop@rel2 healthy on %s", st.Services, v1["rel2"])
	}

	// 4. A release that does not start on rel2 is undone there: current
	// back on v1, the broken release removed; rel1 goes on to v2.
	res = f.rollout("run", plan, "--user", "--events", f.events, "--no-tty", "--deploy", "--deploy-path", filepath.Join(src, "v2"))
	if res.Code != 1 {
		t.Fatalf("deploy v2: exit %d, want 1\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if id, ver := current(t, rel2); id != v1["rel2"] || ver != "v1-rel2" {
		t.Errorf("rel2 after the failed deploy: %s serving %q, want %s back", id, ver, v1["rel2"])
	}
	if got := strings.TrimSpace(rel2.Stdout(t, "ls /srv/i10shop/releases")); len(strings.Fields(got)) != 2 {
		t.Errorf("rel2 releases after the undo: %q, want the first and v1 only", got)
	}
	v2id, ver := current(t, rel1)
	if v2id == v1["rel1"] || ver != "v2-rel1" {
		t.Fatalf("rel1 after deploy v2: %s serving %q, want a new release serving v2-rel1", v2id, ver)
	}

	// 5. rollout rollback --host rel1: rel1 back on v1, v2 marked bad
	// there; rel2 untouched.
	before := strings.TrimSpace(rel2.Stdout(t, "systemctl --user show -p InvocationID --value i10shop.service"))
	res = f.rollout("rollback", plan, "--user", "--events", f.events, "--no-tty", "--host", "rel1")
	if res.Code != 0 {
		t.Fatalf("rollback --host rel1: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	if id, ver := current(t, rel1); id != v1["rel1"] || ver != "v1-rel1" {
		t.Errorf("rel1 after rollback: %s serving %q, want %s", id, ver, v1["rel1"])
	}
	if got := strings.TrimSpace(rel1.Stdout(t, "cat /srv/i10shop/releases/"+v2id+".bad")); !strings.Contains(got, "rolled back") {
		t.Errorf("rel1: %s.bad = %q, want the reason", v2id, got)
	}
	if after := strings.TrimSpace(rel2.Stdout(t, "systemctl --user show -p InvocationID --value i10shop.service")); after != before {
		t.Error("rel2 was restarted by a rollback narrowed to rel1")
	}
	if id, _ := current(t, rel2); id != v1["rel2"] {
		t.Errorf("rel2 after rollback --host rel1: %s, want %s untouched", id, v1["rel2"])
	}
}

// TestFleetReleaseRecoverE2E: a run killed (SIGKILL) after the release
// step switched `current` on both hosts is undone by `rollout recover`:
// each host's current points back at the release it had, and the new one
// is gone.
func TestFleetReleaseRecoverE2E(t *testing.T) {
	t.Parallel()
	f, plan := newReleaseFleet(t)
	src := filepath.Join(f.dir, "src")
	for _, h := range []string{"rel1", "rel2"} {
		writeFile(t, filepath.Join(src, h, "VERSION"), "v1-"+h+"\n")
	}
	cmd := f.command("run", plan, "--user", "--events", f.events, "--no-tty", "--deploy", "--deploy-path", src, "--var", "slow=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, h := range f.hosts {
		for {
			if o, _ := h.Run("test -e /srv/i10shop-slow && echo yes"); strings.TrimSpace(o) == "yes" {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the slow step never started on %s:\n%s", h.Name, out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for _, h := range f.hosts {
		if id, ver := current(t, h); id == relFirst || ver != "v1-"+h.Name {
			t.Fatalf("%s before recover: %s serving %q, want the new release", h.Name, id, ver)
		}
	}
	res := f.rollout("recover", "--user", "--events", f.events)
	if res.Code != 0 {
		t.Fatalf("recover: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, h := range f.hosts {
		if id, ver := current(t, h); id != relFirst || ver != "v0" {
			t.Errorf("%s after recover: %s serving %q, want %s serving v0", h.Name, id, ver, relFirst)
		}
		if got := strings.TrimSpace(h.Stdout(t, "ls -A /srv/i10shop/releases")); got != relFirst {
			t.Errorf("%s: releases after recover %q, want only %s", h.Name, got, relFirst)
		}
	}
	hosts := map[string]bool{}
	for _, e := range f.readEvents() {
		if e.Event == executor.RollbackSuccess {
			hosts[e.Host] = true
		}
	}
	if !hosts["rel1"] || !hosts["rel2"] {
		t.Errorf("ROLLBACK_SUCCESS on hosts %v, want rel1 and rel2", hosts)
	}
}

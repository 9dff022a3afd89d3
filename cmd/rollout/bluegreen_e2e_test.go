package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/loadgen"
	"github.com/rollout-sh/rollout/internal/proxytest"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/internal/zdscenario"
)

// bgPlatform is the blue-green service x-bg: rt-zd-bg@blue.service and
// rt-zd-bg@green.service (each ready 1.5 s after it starts, its port open
// meanwhile) behind a real nginx, all units of a real systemd --user
// manager. Blue serves; green is stopped and `down` in the upstream file.
type bgPlatform struct {
	*platform
	colors                         [2]zdscenario.Color
	lbPort                         int
	nginx, conf, upstream, pidFile string
	lbUnit                         string
}

func newBGPlatform(t *testing.T) *bgPlatform {
	t.Helper()
	p := &bgPlatform{platform: newPlatform(t)}
	p.nginx = proxytest.Binary(t, "nginx")
	base := filepath.Join(p.dir, "x-bg")
	p.colors = zdscenario.Colors(base, systemdtest.FreePort(t), systemdtest.FreePort(t))
	for _, c := range p.colors {
		if err := zdscenario.SetUpColor(c, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	p.m.WriteUnitFile(t, zdscenario.BGTemplate, zdscenario.BGTemplateUnit(p.bin, base))
	dir := filepath.Join(p.dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.lbPort = systemdtest.FreePort(t)
	p.conf, p.upstream, p.pidFile = filepath.Join(dir, "nginx.conf"), filepath.Join(dir, "upstream.conf"), filepath.Join(dir, "nginx.pid")
	writeFile(t, p.upstream, zdscenario.BGUpstream(p.colors))
	writeFile(t, p.conf, proxytest.NginxConfig(proxytest.NginxOptions{Port: p.lbPort, Dir: dir, Upstream: "api", Include: p.upstream}))
	p.lbUnit = "rt-zd-bg-nginx.service"
	p.m.WriteUnitFile(t, p.lbUnit, zdscenario.ProxyUnit("nginx in front of the blue-green test service", filepath.Join(dir, "nginx.out"), p.nginx, "-c", p.conf))
	p.reload()
	p.startUnit(p.lbUnit)
	p.startUnit(p.colors[0].Unit)
	zd := &zdPlatform{platform: p.platform, lbPort: p.lbPort}
	deadline := time.Now().Add(20 * time.Second)
	for good := 0; good < 20; {
		if zd.answers(p.url("/health")) {
			good++
		} else {
			good = 0
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx never answered 20 requests in a row through blue")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func (p *bgPlatform) startUnit(unit string) {
	(&zdPlatform{platform: p.platform}).startUnit(unit)
}

func (p *bgPlatform) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.lbPort, path)
}

func (p *bgPlatform) plan(name, observe, extra string) string {
	return p.writePlan(name, zdscenario.BlueGreenPlan(zdscenario.BGOptions{
		Colors: p.colors, Upstream: p.upstream, Nginx: p.nginx, Conf: p.conf, PidFile: p.pidFile,
		Health: p.url("/health"), Observe: observe, ScaleDownDelay: "1s", Extra: extra,
	}))
}

// release writes a build to deploy: VERSION version; a broken one answers
// every request with 500 (demosvc's BROKEN).
func (p *bgPlatform) release(name, version string, broken bool) string {
	dir := filepath.Join(p.dir, "builds", name)
	writeFile(p.t, filepath.Join(dir, "VERSION"), version+"\n")
	if broken {
		writeFile(p.t, filepath.Join(dir, "BROKEN"), "broken release\n")
	}
	return dir
}

// deploy runs the plan with --deploy under load through nginx.
func (p *bgPlatform) deploy(plan, build string) (runResult, loadgen.Result, time.Duration) {
	return p.runUnderLoad("run", plan, "--user", "--no-tty", "--events", p.events, "--deploy", "--deploy-path", build)
}

// runUnderLoad runs rollout under load through nginx.
func (p *bgPlatform) runUnderLoad(args ...string) (runResult, loadgen.Result, time.Duration) {
	p.t.Helper()
	l, err := loadgen.Start(loadgen.Options{
		URL: p.url("/version"), Workers: 4, Pause: 5 * time.Millisecond, KeepAlive: true,
		MaxRequests: 200000, MaxDuration: 3 * time.Minute,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	r := p.rollout(args...)
	took := time.Since(t0)
	time.Sleep(500 * time.Millisecond)
	res := l.Stop()
	if res.Requests == 0 {
		p.t.Fatal("the load generator sent no request")
	}
	return r, res, took
}

// serving is the VERSION nginx's traffic gets now.
func (p *bgPlatform) serving() string {
	p.t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(p.url("/version"))
	if err != nil {
		p.t.Fatalf("GET through nginx: %v", err)
	}
	defer resp.Body.Close()
	b := make([]byte, 64)
	n, _ := resp.Body.Read(b)
	return strings.TrimSpace(string(b[:n]))
}

// liveInFile is the color the upstream file has in traffic.
func (p *bgPlatform) liveInFile() string {
	text := readFile(p.t, p.upstream)
	var live []string
	for _, c := range p.colors {
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, c.Addr()) && !strings.Contains(line, " down") {
				live = append(live, c.Name)
			}
		}
	}
	return strings.Join(live, ",")
}

func (p *bgPlatform) active(c zdscenario.Color) bool {
	return p.state(&testService{Unit: c.Unit}).ActiveState == "active"
}

// Blue-green through nginx, under load: a broken green release never gets
// traffic (exit 1, blue serves, green stopped); a good one is deployed to
// green, verified, switched to and blue is stopped after the delay; the
// next run finds green live in nginx's upstream file and deploys to blue.
// The client sees 0 failed and 0 slow requests in each run.
func TestZeroDowntimeBlueGreenNginx(t *testing.T) {
	p := newBGPlatform(t)
	plan := p.plan("bluegreen.hcl", "1s", "")
	blue, green := p.colors[0], p.colors[1]

	// 1. A broken release: green fails its health check, traffic never
	// leaves blue.
	r, load, took := p.deploy(plan, p.release("v2-broken", "v2", true))
	t.Logf("blue-green through nginx, broken green release: %s; run took %s", load, took.Round(100*time.Millisecond))
	if r.Code != 1 {
		t.Fatalf("broken release: exit %d, want 1\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("broken release: the client noticed: %s", load)
	}
	if got := p.serving(); got != "v1" {
		t.Errorf("after the broken release nginx serves %q, want v1 (blue)", got)
	}
	if got := p.liveInFile(); got != "blue" {
		t.Errorf("after the broken release the upstream file has %q in traffic, want blue", got)
	}
	if !p.active(blue) || p.active(green) {
		t.Errorf("after the broken release: blue active %v, green active %v; want blue only", p.active(blue), p.active(green))
	}
	if cur, _ := os.Readlink(filepath.Join(green.Base, "current")); cur != "releases/"+zdscenario.BGFirstRelease {
		t.Errorf("green's current is %s after the rollback, want its first release", cur)
	}

	// 2. A good release goes to green and traffic follows.
	r, load, took = p.deploy(plan, p.release("v2", "v2", false))
	t.Logf("blue-green through nginx, blue → green: %s; run took %s", load, took.Round(100*time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("blue → green: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("blue → green: the client noticed the switch: %s", load)
	}
	if got := p.serving(); got != "v2" {
		t.Errorf("after blue → green nginx serves %q, want v2", got)
	}
	if got := p.liveInFile(); got != "green" {
		t.Errorf("after blue → green the upstream file has %q in traffic, want green", got)
	}
	if p.active(blue) || !p.active(green) {
		t.Errorf("after blue → green: blue active %v, green active %v; want green only (blue stopped after the delay)", p.active(blue), p.active(green))
	}

	// 3. The next release: rollout reads green as live from nginx's
	// upstream file and deploys to blue.
	r, load, took = p.deploy(plan, p.release("v3", "v3", false))
	t.Logf("blue-green through nginx, green → blue: %s; run took %s", load, took.Round(100*time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("green → blue: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("green → blue: the client noticed the switch: %s", load)
	}
	if got := p.serving(); got != "v3" {
		t.Errorf("after green → blue nginx serves %q, want v3", got)
	}
	if got := p.liveInFile(); got != "blue" {
		t.Errorf("after green → blue the upstream file has %q in traffic, want blue", got)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(blue.Base, "current", "VERSION"))); got != "v3" {
		t.Errorf("blue's current holds %s, want v3", got)
	}

	// The events log says which color was live before and after.
	var msgs []string
	for _, e := range p.readEvents() {
		if e.Service == "x-bg" && e.Step == "switch" && e.Phase == "" && (e.Event == executor.StepSuccess || e.Event == executor.StepFailed) {
			msgs = append(msgs, e.Event+": "+e.Message)
		}
	}
	want := []string{
		"STEP_FAILED: live before: blue",
		"STEP_SUCCESS: live before: blue; switched blue → green; live after: green; blue stopped",
		"STEP_SUCCESS: live before: green; switched green → blue; live after: blue; green stopped",
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("the switch step's events:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
}

func (p *bgPlatform) invocation(c zdscenario.Color) string {
	return p.state(&testService{Unit: c.Unit}).InvocationID
}

// A release that passes its checks and fails once it has traffic (its
// health turns 503 1.5 s after it is ready): the observe window catches
// it and traffic goes back to blue, which was never stopped. Then, with
// keep_old, a good release leaves blue running, and going back to it is a
// traffic switch (restart_idle = false): blue is not restarted.
func TestZeroDowntimeBlueGreenNginxFailsAfterSwitch(t *testing.T) {
	p := newBGPlatform(t)
	blue, green := p.colors[0], p.colors[1]
	blueRun := p.invocation(blue)

	plan := p.plan("observe.hcl", "3s", "")
	build := p.release("v2-fails-later", "v2", false)
	writeFile(t, filepath.Join(build, "UNHEALTHY_AFTER"), "1500ms\n")
	r, load, took := p.deploy(plan, build)
	t.Logf("blue-green through nginx, green fails after the switch: %s; run took %s", load, took.Round(100*time.Millisecond))
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("the client noticed: %s", load)
	}
	if got := p.liveInFile(); got != "blue" {
		t.Errorf("after the failed observation the upstream file has %q in traffic, want blue", got)
	}
	if got := p.serving(); got != "v1" {
		t.Errorf("nginx serves %q, want v1 (blue)", got)
	}
	if p.invocation(blue) != blueRun {
		t.Errorf("blue was restarted or stopped (InvocationID %s, was %s): it must keep serving until green is observed", p.invocation(blue), blueRun)
	}
	if p.active(green) {
		t.Errorf("green is still active after the rollback")
	}
	var rb []string
	for _, e := range p.readEvents() {
		if e.Service == "x-bg" && e.Phase == "rollback" && e.Event == executor.StepSuccess {
			rb = append(rb, e.Message)
		}
	}
	if len(rb) != 1 || !strings.Contains(rb[0], "traffic back on blue") {
		t.Errorf("the rollback's events: %q, want one saying traffic back on blue", rb)
	}

	// keep_old: blue stays up after the switch to green.
	keep := p.plan("keep.hcl", "1s", "keep_old = true")
	r, load, took = p.deploy(keep, p.release("v2", "v2", false))
	t.Logf("blue-green through nginx, keep_old, blue → green: %s; run took %s", load, took.Round(100*time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("keep_old: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("keep_old: the client noticed: %s", load)
	}
	if got := p.serving(); got != "v2" || !p.active(blue) || p.invocation(blue) != blueRun {
		t.Errorf("keep_old: serving %q (want v2), blue active %v, blue restarted %v", got, p.active(blue), p.invocation(blue) != blueRun)
	}

	// Going back is a switch: blue, verified as it runs, gets the traffic.
	back := p.plan("back.hcl", "1s", "keep_old = true\n    restart_idle = false")
	r, load, took = p.runUnderLoad("run", back, "--user", "--no-tty", "--events", p.events)
	t.Logf("blue-green through nginx, back to the kept blue: %s; run took %s", load, took.Round(100*time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("switch back: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("switch back: the client noticed: %s", load)
	}
	if got := p.serving(); got != "v1" {
		t.Errorf("after switching back nginx serves %q, want v1", got)
	}
	if p.invocation(blue) != blueRun {
		t.Errorf("switching back restarted blue")
	}
	if !p.active(green) {
		t.Errorf("green was stopped, but keep_old keeps it")
	}
}

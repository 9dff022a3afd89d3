package main

// Zero-downtime restarts, proven under load (issue 11): a 3-instance HTTP
// service (a template unit, instances on their own ports, each taking
// 1.5 s to become ready as real APIs do) behind a real HAProxy or nginx,
// all units of a real systemd --user manager, while a load generator
// sends continuous requests through the proxy and counts the requests
// that failed and those that took over a second.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/loadgen"
	"github.com/rollout-sh/rollout/internal/proxytest"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/internal/zdscenario"
)

// zdPlatform is the service x@.service with instances 1..3 behind a load
// balancer, all units of the platform's manager.
type zdPlatform struct {
	*platform
	inst   []zdscenario.Instance
	lbPort int
	lbUnit string
	// HAProxy
	socket string
	// nginx
	nginxConf, upstream, pidFile string
}

func newZDPlatform(t *testing.T) *zdPlatform {
	t.Helper()
	p := &zdPlatform{platform: newPlatform(t)}
	base := filepath.Join(p.dir, "x")
	p.m.WriteUnitFile(t, zdscenario.Template, zdscenario.TemplateUnit(p.bin, base))
	ports := []int{systemdtest.FreePort(t), systemdtest.FreePort(t), systemdtest.FreePort(t)}
	p.inst = zdscenario.Instances(base, filepath.Join(p.dir, "release"), ports)
	for _, in := range p.inst {
		writeFile(t, in.EnvFile, fmt.Sprintf("PORT=%d\n", in.Port))
		writeFile(t, filepath.Join(in.Dir, "VERSION"), "v1\n")
		if err := os.MkdirAll(in.Release, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.lbPort = systemdtest.FreePort(t)
	return p
}

// withHAProxy adds HAProxy in front, as the unit rt-zd-haproxy.service.
func (p *zdPlatform) withHAProxy() *zdPlatform {
	bin := proxytest.Binary(p.t, "haproxy")
	p.socket = filepath.Join(p.dir, "haproxy.sock")
	cfg := filepath.Join(p.dir, "haproxy.cfg")
	writeFile(p.t, cfg, proxytest.HAProxyConfig(proxytest.HAProxyOptions{
		Port: p.lbPort, Socket: p.socket, Backend: "api", Servers: zdscenario.Backends(p.inst), CheckURL: "/health",
	}))
	p.lbUnit = "rt-zd-haproxy.service"
	p.m.WriteUnitFile(p.t, p.lbUnit, zdscenario.ProxyUnit("HAProxy in front of the zero-downtime test service", filepath.Join(p.dir, "haproxy.log"), bin, "-db", "-f", cfg))
	return p
}

// withNginx adds nginx in front, as the unit rt-zd-nginx.service.
func (p *zdPlatform) withNginx() *zdPlatform {
	bin := proxytest.Binary(p.t, "nginx")
	dir := filepath.Join(p.dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	p.nginxConf = filepath.Join(dir, "nginx.conf")
	p.upstream = filepath.Join(dir, "upstream.conf")
	p.pidFile = filepath.Join(dir, "nginx.pid")
	writeFile(p.t, p.upstream, proxytest.NginxUpstream("api", zdscenario.Backends(p.inst)))
	writeFile(p.t, p.nginxConf, proxytest.NginxConfig(proxytest.NginxOptions{Port: p.lbPort, Dir: dir, Upstream: "api", Include: p.upstream}))
	p.lbUnit = "rt-zd-nginx.service"
	p.m.WriteUnitFile(p.t, p.lbUnit, zdscenario.ProxyUnit("nginx in front of the zero-downtime test service", filepath.Join(dir, "nginx.out"), bin, "-c", p.nginxConf))
	return p
}

// start starts the instances and the load balancer and waits until every
// request through it succeeds.
func (p *zdPlatform) start() {
	p.t.Helper()
	p.reload()
	units := []string{p.lbUnit}
	for _, in := range p.inst {
		units = append(units, in.Unit)
	}
	for _, u := range units {
		p.startUnit(u)
	}
	for _, in := range p.inst {
		deadline := time.Now().Add(20 * time.Second)
		for !p.answers(fmt.Sprintf("http://%s/health", in.Addr())) {
			if time.Now().After(deadline) {
				p.t.Fatalf("instance %s never answered", in.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Every instance in the proxy's rotation: a run of good answers.
	deadline := time.Now().Add(20 * time.Second)
	for good := 0; good < 20; {
		if p.answers(p.url()) {
			good++
		} else {
			good = 0
		}
		if time.Now().After(deadline) {
			p.t.Fatal("the load balancer never answered 20 requests in a row")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.socket != "" {
		p.waitHAProxyUp()
	}
}

func (p *zdPlatform) startUnit(unit string) {
	p.t.Helper()
	ch := make(chan string, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.conn().StartUnitContext(ctx, unit, "replace", ch); err != nil {
		p.t.Fatalf("starting %s: %v", unit, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			p.t.Fatalf("starting %s: job %s", unit, res)
		}
	case <-ctx.Done():
		p.t.Fatalf("starting %s: timed out", unit)
	}
}

// waitHAProxyUp waits until HAProxy's checks see every server up.
func (p *zdPlatform) waitHAProxyUp() {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := p.haproxyStatus()
		up := 0
		for _, s := range st {
			if s == "UP" {
				up++
			}
		}
		if up == len(p.inst) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("HAProxy servers: %v, want all UP", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// haproxyStatus reads each server's status from HAProxy's admin socket.
func (p *zdPlatform) haproxyStatus() map[string]string {
	p.t.Helper()
	out, err := haproxyCommand(p.socket, "show stat")
	if err != nil {
		p.t.Fatalf("HAProxy socket: %v", err)
	}
	st := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) > 17 && f[0] == "api" && f[1] != "BACKEND" {
			st[f[1]] = f[17]
		}
	}
	return st
}

func (p *zdPlatform) url() string { return fmt.Sprintf("http://127.0.0.1:%d/version", p.lbPort) }

func (p *zdPlatform) answers(url string) bool {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// plan writes a plan of the instances (zdscenario.Plan).
func (p *zdPlatform) plan(pipeline, planBlock string) string {
	return p.writePlan("plan.hcl", zdscenario.Plan(pipeline, p.inst, planBlock))
}

// underLoad runs rollout with args while the load generator sends
// requests through the load balancer, and returns both results.
func (p *zdPlatform) underLoad(args ...string) (runResult, loadgen.Result) {
	p.t.Helper()
	l, err := loadgen.Start(loadgen.Options{
		URL: p.url(), Workers: 4, Pause: 5 * time.Millisecond, KeepAlive: true,
		MaxRequests: 200000, MaxDuration: 3 * time.Minute,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	// The load is flowing before the run and goes on a little after it,
	// so that the last instance's return to traffic is under load too.
	time.Sleep(300 * time.Millisecond)
	r := p.rollout(args...)
	time.Sleep(500 * time.Millisecond)
	res := l.Stop()
	if res.Requests == 0 {
		p.t.Fatal("the load generator sent no request")
	}
	return r, res
}

func (p *zdPlatform) invocations() map[string]string {
	out := map[string]string{}
	for _, in := range p.inst {
		out[in.Name] = p.state(&testService{Unit: in.Unit}).InvocationID
	}
	return out
}

func (p *zdPlatform) assertRestarted(before map[string]string, names ...string) {
	p.t.Helper()
	after := p.invocations()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for _, in := range p.inst {
		restarted := after[in.Name] != before[in.Name]
		if restarted != want[in.Name] {
			p.t.Errorf("instance %s restarted = %v, want %v", in.Name, restarted, want[in.Name])
		}
	}
}

// The reference's behaviour: every instance restarted in place at once.
// The proxy has nothing to send requests to while they start: failures.
func TestZeroDowntimeBaselineInPlace(t *testing.T) {
	p := newZDPlatform(t).withHAProxy()
	p.start()
	before := p.invocations()
	plan := p.plan(zdscenario.InPlace, `plan "all-at-once" { max_parallel = 3 }`)
	r, load := p.underLoad("run", plan, "--user", "--events", p.events)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	p.assertRestarted(before, "1", "2", "3")
	t.Logf("baseline, in-place restart of all instances at once behind HAProxy: %s", load)
	if load.Failed == 0 {
		t.Errorf("the baseline saw no failed request (%s): the proof below would prove nothing", load)
	}
}

// Rolling, one instance at a time, each out of HAProxy's traffic before
// it stops and back after it is verified: nobody notices.
func TestZeroDowntimeRollingHAProxy(t *testing.T) {
	p := newZDPlatform(t).withHAProxy()
	p.start()
	before := p.invocations()
	plan := p.plan(zdscenario.HAProxy(p.socket), `plan "rolling" { max_parallel = 1 }`)
	r, load := p.underLoad("run", plan, "--user", "--events", p.events)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	p.assertRestarted(before, "1", "2", "3")
	t.Logf("rolling with HAProxy drain: %s", load)
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("the client noticed the restart: %s", load)
	}
	for s, st := range p.haproxyStatus() {
		if st != "UP" {
			t.Errorf("after the run HAProxy's %s is %s, want UP", s, st)
		}
	}
}

// A broken release on instance 2: its verify fails, it is rolled back and
// put back into traffic, instance 3 is never touched, and the load saw
// nothing of it.
func TestZeroDowntimeBrokenReleaseHAProxy(t *testing.T) {
	p := newZDPlatform(t).withHAProxy()
	for _, in := range p.inst {
		writeFile(t, filepath.Join(in.Release, "VERSION"), "v2\n")
	}
	writeFile(t, filepath.Join(p.inst[1].Release, "UNHEALTHY"), "broken release\n")
	p.start()
	before := p.invocations()
	plan := p.plan(zdscenario.HAProxy(p.socket), `plan "rolling" { max_parallel = 1 }`)
	r, load := p.underLoad("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", filepath.Join(p.dir, "release"))
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1 (a service failed and was rolled back)\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("broken release on instance 2, rolling with HAProxy drain: %s", load)
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("the client noticed the failed release: %s", load)
	}
	// 1 restarted on v2; 2 restarted twice (release, rollback) and back on
	// v1; 3 untouched.
	p.assertRestarted(before, "1", "2")
	for _, c := range []struct{ in, want string }{{"1", "v2"}, {"2", "v1"}, {"3", "v1"}} {
		in := p.inst[c.in[0]-'1']
		if got := strings.TrimSpace(readFile(t, filepath.Join(in.Dir, "VERSION"))); got != c.want {
			t.Errorf("instance %s runs %s, want %s", c.in, got, c.want)
		}
	}
	if st := p.haproxyStatus(); st["s2"] != "UP" {
		t.Errorf("after the rollback HAProxy's s2 is %s, want UP (back in traffic)", st["s2"])
	}
	// The rollback's order: stop, restore, start and verify, and only
	// then back into traffic.
	var rb []string
	for _, e := range p.readEvents() {
		if e.Service == "api.2" && e.Phase == "rollback" && e.Event == executor.StepSuccess {
			rb = append(rb, e.Step)
		}
	}
	if got, want := strings.Join(rb, " "), "restart deploy restart drain"; got != want {
		t.Errorf("api.2's rollback steps: %q, want %q", got, want)
	}
	names := eventNames(p.readEvents(), func(e executor.Event) bool {
		return e.Event == executor.RollbackSuccess || e.Event == executor.ServiceSkipped || e.Event == executor.ServiceRestartSuccess
	})
	if got, want := strings.Join(names, ", "), "SERVICE_RESTART_SUCCESS api.1, ROLLBACK_SUCCESS api.2, SERVICE_SKIPPED api.3"; got != want {
		t.Errorf("events: %s\nwant: %s", got, want)
	}
}

// The same through nginx: the upstream file rewritten and nginx reloaded
// gracefully around each instance's restart.
func TestZeroDowntimeRollingNginx(t *testing.T) {
	p := newZDPlatform(t).withNginx()
	p.start()
	before := p.invocations()
	upstreamBefore := readFile(t, p.upstream)
	plan := p.plan(zdscenario.Nginx(p.upstream, proxytest.Binary(t, "nginx"), p.nginxConf, p.pidFile), `plan "rolling" { max_parallel = 1 }`)
	r, load := p.underLoad("run", plan, "--user", "--events", p.events)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	p.assertRestarted(before, "1", "2", "3")
	t.Logf("rolling with nginx upstream rewrite and reload: %s", load)
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("the client noticed the restart: %s", load)
	}
	if got := readFile(t, p.upstream); got != upstreamBefore {
		t.Errorf("the upstream file after the run:\n%s\nwant it as before:\n%s", got, upstreamBefore)
	}
}

// haproxyCommand sends one command to HAProxy's admin socket and returns the answer.
func haproxyCommand(socket, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// canaryRelease writes a release v2 for every instance; errorRate, when
// set, is what its /metrics reports: healthy, and failing in production.
func (p *zdPlatform) canaryRelease(errorRate string) string {
	p.t.Helper()
	for _, in := range p.inst {
		writeFile(p.t, filepath.Join(in.Release, "VERSION"), "v2\n")
		if errorRate != "" {
			writeFile(p.t, filepath.Join(in.Release, "ERROR_RATE"), errorRate+"\n")
		}
	}
	return filepath.Join(p.dir, "release")
}

func (p *zdPlatform) versions() map[string]string {
	out := map[string]string{}
	for _, in := range p.inst {
		out[in.Name] = strings.TrimSpace(readFile(p.t, filepath.Join(in.Dir, "VERSION")))
	}
	return out
}

// A release whose instances are healthy but whose errors the analysis
// sees: the canary (instance 1) is rolled back, under load, without a
// failed request; instances 2 and 3 are never touched; exit 1.
func TestZeroDowntimeCanaryBrokenRelease(t *testing.T) {
	p := newZDPlatform(t).withHAProxy()
	release := p.canaryRelease("0.5")
	p.start()
	before := p.invocations()
	plan := p.writePlan("plan.hcl", zdscenario.Canary(p.socket, filepath.Join(p.dir, "x"), p.inst, "3s", "500ms", ""))
	r, load := p.underLoad("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", release)
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1 (the canary failed and was rolled back)\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("canary of a broken release behind HAProxy, rolled back: %s", load)
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("the client noticed the canary and its rollback: %s", load)
	}
	after := p.invocations()
	if after["1"] == before["1"] {
		t.Error("the canary (instance 1) was never restarted")
	}
	for _, n := range []string{"2", "3"} {
		if after[n] != before[n] {
			t.Errorf("instance %s was restarted (InvocationID %s → %s); only the canary may be", n, before[n], after[n])
		}
	}
	if v := p.versions(); v["1"] != "v1" || v["2"] != "v1" || v["3"] != "v1" {
		t.Errorf("versions after the rollback: %v, want v1 everywhere", v)
	}
	if st := p.haproxyStatus(); st["s1"] != "UP" {
		t.Errorf("after the rollback HAProxy's s1 is %s, want UP (back in traffic)", st["s1"])
	}
	names := eventNames(p.readEvents(), func(e executor.Event) bool {
		switch e.Event {
		case executor.CanaryStart, executor.CanaryFailed, executor.CanaryPromoted, executor.RollbackSuccess, executor.ServiceSkipped:
			return true
		}
		return false
	})
	if got, want := strings.Join(names, ", "), "CANARY_START api, CANARY_FAILED api, ROLLBACK_SUCCESS api:1, SERVICE_SKIPPED api:2, SERVICE_SKIPPED api:3"; got != want {
		t.Errorf("events: %s\nwant: %s", got, want)
	}
	for _, e := range p.readEvents() {
		if e.Event == executor.CanaryFailed && !strings.Contains(e.Error, "errors.rate is 0.5, above the maximum 0.01") {
			t.Errorf("CANARY_FAILED says %q, want the analysis's finding", e.Error)
		}
	}
}

// A good release: the canary passes its observation and is promoted
// automatically, then the rest roll; nobody notices.
func TestZeroDowntimeCanaryPromoted(t *testing.T) {
	p := newZDPlatform(t).withHAProxy()
	release := p.canaryRelease("")
	p.start()
	before := p.invocations()
	plan := p.writePlan("plan.hcl", zdscenario.Canary(p.socket, filepath.Join(p.dir, "x"), p.inst, "3s", "500ms", ""))
	r, load := p.underLoad("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", release)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("canary of a good release behind HAProxy, promoted: %s", load)
	if load.Failed != 0 || load.Slow != 0 {
		t.Errorf("the client noticed the restart: %s", load)
	}
	p.assertRestarted(before, "1", "2", "3")
	if v := p.versions(); v["1"] != "v2" || v["2"] != "v2" || v["3"] != "v2" {
		t.Errorf("versions: %v, want v2 everywhere", v)
	}
	names := eventNames(p.readEvents(), func(e executor.Event) bool {
		switch e.Event {
		case executor.CanaryStart, executor.CanaryPromoted, executor.ServiceRestartSuccess:
			return true
		}
		return false
	})
	if got, want := strings.Join(names, ", "), "SERVICE_RESTART_SUCCESS api:1, CANARY_START api, CANARY_PROMOTED api, SERVICE_RESTART_SUCCESS api:2, SERVICE_RESTART_SUCCESS api:3"; got != want {
		t.Errorf("events: %s\nwant: %s", got, want)
	}
}

// A person promotes the canary from another shell with `rollout promote
// RUN_ID`; until then the rest of the instances are not touched.
func TestZeroDowntimeCanaryPromotedByAPerson(t *testing.T) {
	// No load is measured here: it may share the machine with other tests.
	t.Parallel()
	p := newZDPlatform(t).withHAProxy()
	release := p.canaryRelease("")
	p.start()
	before := p.invocations()
	plan := p.writePlan("plan.hcl", zdscenario.Canary(p.socket, filepath.Join(p.dir, "x"), p.inst, "1s", "200ms", `auto_promote = false`))
	s := p.platform.start("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", release)
	ev := p.waitForEvent(s, 60*time.Second, func(e executor.Event) bool { return e.Event == executor.CanaryStart })
	if !strings.Contains(ev.Message, "rollout promote "+ev.RunID) {
		t.Errorf("CANARY_START does not say how to promote: %q", ev.Message)
	}
	// The observation passes; the run then waits for a person.
	var r runResult
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = p.rollout("promote", ev.RunID, "--user")
		if r.Code == 0 || time.Now().After(deadline) {
			break
		}
		if after := p.invocations(); after["2"] != before["2"] || after["3"] != before["3"] {
			t.Fatalf("instances 2 and 3 restarted before the promotion: %v → %v", before, after)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.Code != 0 {
		t.Fatalf("rollout promote: exit %d\n%s", r.Code, r.Stderr)
	}
	if code := s.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, s.stderr())
	}
	p.assertRestarted(before, "1", "2", "3")
	promoted := false
	for _, e := range p.readEvents() {
		promoted = promoted || (e.Event == executor.CanaryPromoted && strings.Contains(e.Message, "promoted by "))
	}
	if !promoted {
		t.Error("no CANARY_PROMOTED naming who promoted")
	}
	if r := p.rollout("promote", ev.RunID, "--user"); r.Code != exitUsage || !strings.Contains(r.Stderr, "no canary of run") {
		t.Errorf("promote of a finished run: exit %d %s, want 2", r.Code, r.Stderr)
	}
}

// rollout dies (SIGKILL) while its canary is observed: the canary is in
// the journal, so `rollout recover` rolls it back; the other instances
// were never touched.
func TestZeroDowntimeCanaryCrashThenRecover(t *testing.T) {
	// No load is measured here: it may share the machine with other tests.
	t.Parallel()
	p := newZDPlatform(t).withHAProxy()
	release := p.canaryRelease("")
	p.start()
	before := p.invocations()
	plan := p.writePlan("plan.hcl", zdscenario.Canary(p.socket, filepath.Join(p.dir, "x"), p.inst, "5m", "1s", ""))
	s := p.platform.start("run", plan, "--user", "--events", p.events, "--deploy", "--deploy-path", release)
	p.waitForEvent(s, 60*time.Second, func(e executor.Event) bool { return e.Event == executor.CanaryStart })
	s.signal(t, syscall.SIGKILL)
	s.wait(t, 10*time.Second)
	if v := p.versions(); v["1"] != "v2" {
		t.Fatalf("before recovery the canary runs %s, want v2", v["1"])
	}
	canary := p.invocations()["1"]
	r := p.rollout("recover", "--user")
	if r.Code != 0 {
		t.Fatalf("recover: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	after := p.invocations()
	if after["1"] == canary {
		t.Error("recover did not restart the canary")
	}
	for _, n := range []string{"2", "3"} {
		if after[n] != before[n] {
			t.Errorf("instance %s was restarted", n)
		}
	}
	if v := p.versions(); v["1"] != "v1" {
		t.Errorf("after recovery the canary runs %s, want v1", v["1"])
	}
	if st := p.haproxyStatus(); st["s1"] != "UP" {
		t.Errorf("after recovery HAProxy's s1 is %s, want UP", st["s1"])
	}
}

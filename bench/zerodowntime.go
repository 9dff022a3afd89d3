package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rollout-sh/rollout/internal/loadgen"
	"github.com/rollout-sh/rollout/internal/proxytest"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/internal/zdscenario"
)

// zeroDowntimeBench runs the zero-downtime scenarios of the e2e tests
// (internal/zdscenario) under load and prints, for each strategy, what a
// client saw and how long the run took: a 3-instance service behind a
// real HAProxy and a real nginx, all units of a private systemd --user
// manager.
func zeroDowntimeBench() error {
	const canaryObserve, canaryInterval = "3s", "500ms"
	haproxy, err := proxytest.Lookup("haproxy")
	if err != nil {
		return err
	}
	nginx, err := proxytest.Lookup("nginx")
	if err != nil {
		return err
	}
	m, stop, err := systemdtest.StartMain()
	if err != nil {
		return fmt.Errorf("starting a systemd --user manager: %w", err)
	}
	defer stop()
	work, err := os.MkdirTemp("", "rollout-zd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	testsvc, err := goBuild(work, "testsvc", "github.com/rollout-sh/rollout/internal/testsvc")
	if err != nil {
		return err
	}
	rollout, err := goBuild(work, "rollout", "github.com/rollout-sh/rollout/cmd/rollout")
	if err != nil {
		return err
	}

	var ports []int
	for range 5 {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports = append(ports, p)
	}
	haproxyPort, nginxPort := ports[3], ports[4]
	base := filepath.Join(work, "x")
	insts := zdscenario.Instances(base, filepath.Join(work, "release"), ports[:3])
	writeFile(filepath.Join(m.UnitDir, zdscenario.Template), zdscenario.TemplateUnit(testsvc, base))
	for _, in := range insts {
		for _, d := range []string{in.Dir, in.Release} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		writeFile(in.EnvFile, fmt.Sprintf("PORT=%d\n", in.Port))
		writeFile(filepath.Join(in.Dir, "VERSION"), "v1\n")
		writeFile(filepath.Join(in.Release, "VERSION"), "v2\n")
	}
	// Instance 2's release is broken: its health check fails.
	writeFile(filepath.Join(insts[1].Release, "UNHEALTHY"), "broken release\n")
	// The canaries' releases: v3 everywhere, healthy; the bad one reports
	// errors in its /metrics, which the canary's analysis reads.
	goodRelease, badRelease := filepath.Join(work, "release-good"), filepath.Join(work, "release-bad")
	for _, in := range insts {
		for _, d := range []string{filepath.Join(goodRelease, in.Name), filepath.Join(badRelease, in.Name)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		writeFile(filepath.Join(goodRelease, in.Name, "VERSION"), "v3\n")
		writeFile(filepath.Join(badRelease, in.Name, "VERSION"), "v3\n")
		writeFile(filepath.Join(badRelease, in.Name, "ERROR_RATE"), "0.5\n")
	}

	socket := filepath.Join(work, "haproxy.sock")
	hcfg := filepath.Join(work, "haproxy.cfg")
	writeFile(hcfg, proxytest.HAProxyConfig(proxytest.HAProxyOptions{
		Port: haproxyPort, Socket: socket, Backend: "api", Servers: zdscenario.Backends(insts), CheckURL: "/health",
	}))
	writeFile(filepath.Join(m.UnitDir, "rt-zd-haproxy.service"),
		zdscenario.ProxyUnit("HAProxy", filepath.Join(work, "haproxy.log"), haproxy, "-db", "-f", hcfg))
	nconf, upstream, pidFile, err := writeNginx(filepath.Join(work, "nginx"), nginxPort,
		proxytest.NginxUpstream("api", zdscenario.Backends(insts)), filepath.Join(m.UnitDir, "rt-zd-nginx.service"), "nginx", nginx)
	if err != nil {
		return err
	}

	ctx := context.Background()
	conn, err := m.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	units := []string{"rt-zd-haproxy.service", "rt-zd-nginx.service"}
	for _, in := range insts {
		units = append(units, in.Unit)
	}
	for _, u := range units {
		ch := make(chan string, 1)
		if _, err := conn.StartUnitContext(ctx, u, "replace", ch); err != nil {
			return fmt.Errorf("starting %s: %w", u, err)
		}
		if res := <-ch; res != "done" {
			return fmt.Errorf("starting %s: %s", u, res)
		}
	}
	viaHAProxy := fmt.Sprintf("http://127.0.0.1:%d/version", haproxyPort)
	viaNginx := fmt.Sprintf("http://127.0.0.1:%d/version", nginxPort)

	type scenario struct {
		name, url, pipeline, planBlock string
		args                           []string
		wantExit                       int
		plan                           string // the whole plan, instead of pipeline + planBlock
	}
	rolling := `plan "rolling" { max_parallel = 1 }`
	scenarios := []scenario{
		{"in place, all at once (the reference), HAProxy", viaHAProxy, zdscenario.InPlace, `plan "all" { max_parallel = 3 }`, nil, 0, ""},
		{"rolling in place, no drain, HAProxy", viaHAProxy, zdscenario.InPlace, rolling, nil, 0, ""},
		{"rolling in place, no upstream change, nginx", viaNginx, zdscenario.InPlace, rolling, nil, 0, ""},
		{"rolling with HAProxy drain", viaHAProxy, zdscenario.HAProxy(socket), rolling, nil, 0, ""},
		{"rolling through nginx upstream + reload", viaNginx, zdscenario.Nginx(upstream, nginx, nconf, pidFile), rolling, nil, 0, ""},
		{"broken release on instance 2, HAProxy drain", viaHAProxy, zdscenario.HAProxy(socket), rolling,
			[]string{"--deploy", "--deploy-path", filepath.Join(work, "release")}, 1, ""},
		{"canary, good release, promoted, HAProxy drain", viaHAProxy, "", "",
			[]string{"--deploy", "--deploy-path", goodRelease}, 0, zdscenario.Canary(socket, base, insts, canaryObserve, canaryInterval, "")},
		{"canary, release with errors, rolled back", viaHAProxy, "", "",
			[]string{"--deploy", "--deploy-path", badRelease}, 1, zdscenario.Canary(socket, base, insts, canaryObserve, canaryInterval, "")},
	}
	fmt.Printf("Zero-downtime: 3 instances (ready %s after start, port open meanwhile) behind HAProxy and nginx;\n"+
		"4 keep-alive clients, a request every 5 ms each, through the proxy during the run;\n"+
		"canaries: instance 1 observed %s, checked every %s (health, /metrics errors.rate <= 0.01)\n\n", zdscenario.ReadyDelay, canaryObserve, canaryInterval)
	fmt.Printf("%-48s %8s %7s %6s %9s %8s %5s\n", "strategy", "requests", "failed", "slow", "max", "run", "exit")
	for k, sc := range scenarios {
		// Every instance healthy and in the proxies' rotation before each
		// scenario, as after a quiet period.
		if err := waitAllGood(viaHAProxy, viaNginx); err != nil {
			return err
		}
		if err := waitHAProxyUp(socket, len(insts)); err != nil {
			return err
		}
		plan := filepath.Join(work, fmt.Sprintf("plan-%d.hcl", k))
		if sc.plan != "" {
			writeFile(plan, sc.plan)
		} else {
			writeFile(plan, zdscenario.Plan(sc.pipeline, insts, sc.planBlock))
		}
		l, err := loadgen.Start(loadgen.Options{URL: sc.url, Workers: 4, Pause: 5 * time.Millisecond, KeepAlive: true, MaxDuration: 3 * time.Minute})
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		args := append([]string{"run", plan, "--user", "--no-tty", "--events", filepath.Join(work, "events.jsonl")}, sc.args...)
		t0 := time.Now()
		code, out := runExit(m, rollout, args...)
		wall := time.Since(t0)
		time.Sleep(500 * time.Millisecond)
		res := l.Stop()
		if code != sc.wantExit {
			return fmt.Errorf("%s: rollout exited %d, want %d\n%s", sc.name, code, sc.wantExit, out)
		}
		fmt.Printf("%-48s %8d %7d %6d %9s %8s %5d\n", sc.name, res.Requests, res.Failed, res.Slow,
			res.Max.Round(time.Millisecond), wall.Round(100*time.Millisecond), code)
	}
	fmt.Println()
	return blueGreenBench(m, nginx, testsvc, rollout, work)
}

// blueGreenBench runs the blue-green scenarios of the e2e tests
// (cmd/rollout TestZeroDowntimeBlueGreenNginx): the service x-bg as two
// colors of a template unit behind its own nginx, a release deployed to
// the idle color under load. Rows: a broken release (never gets traffic),
// blue → green, and the next release, which goes to blue because nginx's
// upstream file shows green live.
func blueGreenBench(m *systemdtest.Manager, nginx, testsvc, rollout, work string) error {
	var ports []int
	for range 3 {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports = append(ports, p)
	}
	base := filepath.Join(work, "x-bg")
	colors := zdscenario.Colors(base, ports[0], ports[1])
	for _, c := range colors {
		if err := zdscenario.SetUpColor(c, "v1"); err != nil {
			return err
		}
	}
	writeFile(filepath.Join(m.UnitDir, zdscenario.BGTemplate), zdscenario.BGTemplateUnit(testsvc, base))
	nconf, upstream, pidFile, err := writeNginx(filepath.Join(work, "nginx-bg"), ports[2],
		zdscenario.BGUpstream(colors), filepath.Join(m.UnitDir, "rt-zd-bg-nginx.service"), "nginx (blue-green)", nginx)
	if err != nil {
		return err
	}
	ctx := context.Background()
	sconn, err := m.Conn(ctx)
	if err != nil {
		return err
	}
	defer sconn.Close()
	if err := sconn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	for _, u := range []string{"rt-zd-bg-nginx.service", colors[0].Unit} {
		ch := make(chan string, 1)
		if _, err := sconn.StartUnitContext(ctx, u, "replace", ch); err != nil {
			return fmt.Errorf("starting %s: %w", u, err)
		}
		if res := <-ch; res != "done" {
			return fmt.Errorf("starting %s: %s", u, res)
		}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	plan := filepath.Join(work, "bluegreen.hcl")
	writeFile(plan, zdscenario.BlueGreenPlan(zdscenario.BGOptions{
		Colors: colors, Upstream: upstream, Nginx: nginx, Conf: nconf, PidFile: pidFile,
		Health: url + "/health", Observe: "1s", ScaleDownDelay: "1s",
	}))
	build := func(name, version string, broken bool) string {
		dir := filepath.Join(work, "builds", name)
		_ = os.MkdirAll(dir, 0o755)
		writeFile(filepath.Join(dir, "VERSION"), version+"\n")
		if broken {
			writeFile(filepath.Join(dir, "BROKEN"), "broken release\n")
		}
		return dir
	}
	type scenario struct {
		name, build string
		wantExit    int
	}
	scenarios := []scenario{
		{"blue-green nginx, broken green release", build("v2-broken", "v2", true), 1},
		{"blue-green nginx, blue → green", build("v2", "v2", false), 0},
		{"blue-green nginx, green → blue (live read)", build("v3", "v3", false), 0},
	}
	fmt.Printf("Blue-green: the service as two colors of a template unit (ready %s after start), behind nginx;\n"+
		"a release deployed to the idle color, observe 1s, the old color stopped 1s later\n\n", zdscenario.ReadyDelay)
	fmt.Printf("%-48s %8s %7s %6s %9s %8s %5s\n", "strategy", "requests", "failed", "slow", "max", "run", "exit")
	for _, sc := range scenarios {
		if err := waitAllGood(url + "/version"); err != nil {
			return err
		}
		l, err := loadgen.Start(loadgen.Options{URL: url + "/version", Workers: 4, Pause: 5 * time.Millisecond, KeepAlive: true, MaxDuration: 3 * time.Minute})
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		t0 := time.Now()
		code, out := runExit(m, rollout, "run", plan, "--user", "--no-tty", "--events", filepath.Join(work, "events.jsonl"), "--deploy", "--deploy-path", sc.build)
		wall := time.Since(t0)
		time.Sleep(500 * time.Millisecond)
		res := l.Stop()
		if code != sc.wantExit {
			return fmt.Errorf("%s: rollout exited %d, want %d\n%s", sc.name, code, sc.wantExit, out)
		}
		fmt.Printf("%-48s %8d %7d %6d %9s %8s %5d\n", sc.name, res.Requests, res.Failed, res.Slow,
			res.Max.Round(time.Millisecond), wall.Round(100*time.Millisecond), code)
	}
	fmt.Println()
	return nil
}

// writeNginx writes, in dir, an nginx listening on port in front of the
// upstream "api" (upstreamText, in its own file that the scenarios
// rewrite), and its unit file at unitPath; it returns the paths of the
// configuration, the upstream file and the pid file.
func writeNginx(dir string, port int, upstreamText, unitPath, desc, nginx string) (conf, upstream, pidFile string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", "", err
	}
	conf, upstream, pidFile = filepath.Join(dir, "nginx.conf"), filepath.Join(dir, "upstream.conf"), filepath.Join(dir, "nginx.pid")
	writeFile(upstream, upstreamText)
	writeFile(conf, proxytest.NginxConfig(proxytest.NginxOptions{Port: port, Dir: dir, Upstream: "api", Include: upstream}))
	writeFile(unitPath, zdscenario.ProxyUnit(desc, filepath.Join(dir, "nginx.out"), nginx, "-c", conf))
	return conf, upstream, pidFile, nil
}

// runExit runs a command with the manager's environment and returns its
// exit code and the tail of its output.
func runExit(m *systemdtest.Manager, name string, args ...string) (int, string) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), m.Env()...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.tail()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.tail()
	}
	return -1, err.Error()
}

// waitAllGood waits until 30 requests in a row succeed through each URL
// (HAProxy's checks see every instance up again after the last scenario).
func waitAllGood(urls ...string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for _, u := range urls {
		deadline := time.Now().Add(30 * time.Second)
		for good := 0; good < 30; {
			resp, err := c.Get(u)
			if err == nil {
				resp.Body.Close()
			}
			if err == nil && resp.StatusCode == http.StatusOK {
				good++
			} else {
				good = 0
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never answered 30 requests in a row", strings.TrimSuffix(u, "/version"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// waitHAProxyUp waits until HAProxy's checks see every server of backend
// api up: its retries would otherwise hide a server still down.
func waitHAProxyUp(socket string, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := haproxyCommand(socket, "show stat")
		up := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Split(line, ",")
			if len(f) > 17 && f[0] == "api" && f[1] != "BACKEND" && f[17] == "UP" {
				up++
			}
		}
		if err == nil && up == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("HAProxy sees %d of %d servers up (%v)", up, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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

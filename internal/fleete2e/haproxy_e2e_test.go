package fleete2e

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/fakehost"
	"github.com/rollout-sh/rollout/internal/loadgen"
	"github.com/rollout-sh/rollout/internal/proxytest"
	"github.com/rollout-sh/rollout/internal/systemdtest"
)

// TestHAProxyInFrontOfHostsE2E: one HAProxy (on the controller, its
// runtime API on a TCP address, as a dedicated load balancer exposes it)
// in front of a service's instances on two hosts. The run rolls the hosts
// one at a time: each instance leaves HAProxy's traffic (its server named
// after its host, `api_${host.name}`) before it restarts on its host and
// comes back after its health check. Clients through HAProxy see no
// failed request, every instance has a new InvocationID, and both servers
// end in traffic.
func TestHAProxyInFrontOfHostsE2E(t *testing.T) {
	t.Parallel()
	haproxy := proxytest.Binary(t, "haproxy")
	bin := systemdtest.BuildTestsvc(t)
	f := &fleet{t: t, dir: t.TempDir()}
	f.events = filepath.Join(f.dir, "events.jsonl")
	ports := map[string]int{}
	var servers []proxytest.Backend
	for _, name := range []string{"lb1", "lb2"} {
		h := fakehost.Start(t, name)
		f.hosts = append(f.hosts, h)
		// The hosts share this machine's network: each instance gets a
		// port of its own.
		port := systemdtest.FreePort(t)
		ports[name] = port
		servers = append(servers, proxytest.Backend{Name: "api_" + name, Port: port})
		// An API that opens its port at once and answers only once warm
		// (1 s later), as many do: without the drain, requests routed
		// to it meanwhile would wait (slow) or fail.
		unit := systemdtest.HTTPServiceUnit("api", bin, port, "/srv/api", systemdtest.UnitOptions{
			Args: []string{"-listen-early", "-ready-delay=1s"},
		})
		h.Stdout(t, fmt.Sprintf("mkdir -p /srv/api && printf '%%s' %s >/srv/cfg/systemd/user/api.service && systemctl --user daemon-reload && systemctl --user start api.service",
			shellQuote(unit)))
		waitHTTP(t, port)
	}
	admin, front := systemdtest.FreePort(t), systemdtest.FreePort(t)
	cfg := filepath.Join(f.dir, "haproxy.cfg")
	writeFile(t, cfg, proxytest.HAProxyConfig(proxytest.HAProxyOptions{
		Port: front, Socket: fmt.Sprintf("ipv4@127.0.0.1:%d", admin), Backend: "api", Servers: servers, CheckURL: "/health",
	}))
	log := filepath.Join(f.dir, "haproxy.log")
	proxytest.Start(t, log, haproxy, "-db", "-f", cfg)
	proxytest.WaitListening(t, front, log)
	waitUp(t, front)

	var b strings.Builder
	for _, h := range f.hosts {
		b.WriteString(h.HCL())
	}
	fmt.Fprintf(&b, `
pipeline "behind-haproxy" {
  step "haproxy_drain" "drain" {
    socket  = "127.0.0.1:%[1]d"
    backend = "api"
    server  = "api_${host.name}"
    timeout = "10s"
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "haproxy_ready" "ready" {
    socket  = "127.0.0.1:%[1]d"
    backend = "api"
    server  = "api_${host.name}"
  }
}

service "api" {
  unit     = "api.service"
  hosts    = ["lb1", "lb2"]
  serial   = [1]
  pipeline = "behind-haproxy"
  health "http" {
    url      = "http://127.0.0.1:${{lb1 = %[2]d, lb2 = %[3]d}[host.name]}/health"
    timeout  = "2s"
    retries  = 20
    interval = "100ms"
  }
}
`, admin, ports["lb1"], ports["lb2"])
	plan := filepath.Join(f.dir, "lb.hcl")
	writeFile(t, plan, b.String())
	id := func(h *fakehost.Host) string { return invocationID(t, h, "api.service") }
	before := map[string]string{}
	for _, h := range f.hosts {
		before[h.Name] = id(h)
	}

	load, err := loadgen.Start(loadgen.Options{URL: fmt.Sprintf("http://127.0.0.1:%d/health", front), Workers: 4, Pause: 5 * time.Millisecond,
		KeepAlive: true, MaxDuration: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cmd := f.command("run", plan, "--user", "--events", f.events, "--no-tty")
	out, runErr := cmd.CombinedOutput()
	res := load.Stop()
	if runErr != nil {
		t.Fatalf("run: %v\n%s", runErr, out)
	}
	t.Logf("through HAProxy during the run: %s", res)
	if res.Requests == 0 || res.Failed != 0 || res.Slow != 0 {
		t.Errorf("clients saw %d failed and %d slow of %d requests through HAProxy", res.Failed, res.Slow, res.Requests)
	}
	evs := f.readEvents()
	for _, h := range f.hosts {
		inst := "api@" + h.Name
		if indexOf(evs, executor.ServiceRestartSuccess, inst) < 0 {
			t.Errorf("%s did not succeed:\n%s", inst, eventLines(evs))
		}
		if after := id(h); after == before[h.Name] || after == "" {
			t.Errorf("%s: InvocationID %q → %q, not restarted", inst, before[h.Name], after)
		}
		drained, ready := -1, -1
		for i, e := range evs {
			if e.Service == inst && e.Event == executor.StepSuccess && e.Phase == "" {
				switch e.Step {
				case "drain":
					drained = i
				case "ready":
					ready = i
				}
			}
		}
		if drained < 0 || ready < drained {
			t.Errorf("%s: drained at event %d, back in traffic at %d\n%s", inst, drained, ready, eventLines(evs))
		}
	}
	// Both servers end in traffic.
	for _, s := range servers {
		if st := haproxyState(t, admin, s.Name); st != "2" {
			t.Errorf("server %s: operational state %s after the run, want 2 (up)", s.Name, st)
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// waitUp waits until HAProxy answers 200 through its frontend (its
// health checks have found a server up).
func waitUp(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := loadgen.Start(loadgen.Options{URL: fmt.Sprintf("http://127.0.0.1:%d/health", port), Workers: 1, MaxRequests: 1}); err == nil {
			<-res.Done()
			if r := res.Stop(); r.Failed == 0 && r.Requests == 1 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("HAProxy on port %d never answered 200", port)
}

// haproxyState is a server's operational state from `show servers state`
// (2 = running) over the TCP runtime API.
func haproxyState(t *testing.T, admin int, server string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", admin), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "show servers state api\n")
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(sb.String(), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[3] == server {
			return f[5]
		}
	}
	t.Fatalf("server %s not in HAProxy's state:\n%s", server, sb.String())
	return ""
}

// waitHTTP waits until the instance on port answers (it warms up first).
func waitHTTP(t *testing.T, port int) {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port)); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the instance on port %d never answered", port)
}

// Package zdscenario holds the zero-downtime scenarios that the end-to-end
// tests (cmd/rollout) assert and the benchmark (bench) measures, so that
// both run the same units and plans: a 3-instance HTTP service (a template
// unit, each instance on its own port, ready 1.5 s after it starts with its
// port already open) behind HAProxy or nginx.
package zdscenario

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/rollout-sh/rollout/internal/proxytest"
)

// ReadyDelay is how long an instance takes from start to serving. Its
// port is open meanwhile (testsvc -listen-early), as many real APIs do, so
// a proxy's retries of refused connections cannot hide the restart.
const ReadyDelay = "1500ms"

// Template is the template unit's name; an instance N runs as rt-zd-x@N.service.
const Template = "rt-zd-x@.service"

// Instance is one instance of the service: the plan service api.N in the
// scenarios that declare each instance as a service of its own, or
// instance N of the service api (Canary).
type Instance struct {
	Name    string // "1"
	Service string // "api.1"
	Unit    string // "rt-zd-x@1.service"
	Port    int
	Dir     string // working_dir: base/N
	Release string // what --deploy ships: releaseBase/N
	EnvFile string // PORT=..., outside the working dir (a deploy mirrors that)
}

// Addr is the instance's address as the load balancers name it.
func (i Instance) Addr() string { return fmt.Sprintf("127.0.0.1:%d", i.Port) }

// LBServer is the instance's HAProxy server name.
func (i Instance) LBServer() string { return "s" + i.Name }

// Instances describes instances 1..len(ports) under base.
func Instances(base, releaseBase string, ports []int) []Instance {
	var out []Instance
	for k, port := range ports {
		name := fmt.Sprint(k + 1)
		out = append(out, Instance{
			Name:    name,
			Service: "api." + name,
			Unit:    strings.Replace(Template, "@", "@"+name, 1),
			Port:    port,
			Dir:     filepath.Join(base, name),
			Release: filepath.Join(releaseBase, name),
			EnvFile: filepath.Join(base, name+".env"),
		})
	}
	return out
}

// Backends are the instances as load balancer servers.
func Backends(insts []Instance) []proxytest.Backend {
	var out []proxytest.Backend
	for _, in := range insts {
		out = append(out, proxytest.Backend{Name: in.LBServer(), Port: in.Port})
	}
	return out
}

// TemplateUnit runs testsvc (bin) for instance %i from base/%i.
func TemplateUnit(bin, base string) string {
	return fmt.Sprintf(`[Unit]
Description=rollout zero-downtime test instance %%i

[Service]
Type=exec
EnvironmentFile=%s/%%i.env
ExecStart=%s -addr 127.0.0.1:${PORT} -dir %s/%%i -ready-delay %s -listen-early
WorkingDirectory=%s/%%i
StandardOutput=append:%s/%%i.log
StandardError=inherit
`, base, bin, base, ReadyDelay, base, base)
}

// ProxyUnit runs a load balancer in the foreground, its output in log.
func ProxyUnit(description, log string, argv ...string) string {
	return fmt.Sprintf(`[Unit]
Description=%s

[Service]
Type=exec
ExecStart=%s
StandardOutput=append:%s
StandardError=inherit
`, description, strings.Join(argv, " "), log)
}

// InPlace is the reference's pipeline: restart, verify.
const InPlace = `
pipeline "api" {
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
`

// HAProxy drains the instance before it stops and readies it after it is
// verified; with --deploy it ships the instance's release in between.
func HAProxy(socket string) string {
	return fmt.Sprintf(`
pipeline "api" {
  step "haproxy_drain" "drain" {
    socket  = %[1]q
    backend = "api"
    server  = service.meta.lb_server
  }
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.meta.instance}"
    to   = service.working_dir
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "haproxy_ready" "ready" {
    socket  = %[1]q
    backend = "api"
    server  = service.meta.lb_server
  }
}
`, socket)
}

// Nginx takes the instance out of nginx's upstream file before it stops
// and puts it back after it is verified.
func Nginx(upstream, nginx, conf, pidFile string) string {
	return fmt.Sprintf(`
pipeline "api" {
  step "nginx_upstream" "out" {
    file     = %[1]q
    server   = service.meta.addr
    state    = "down"
    nginx    = %[2]q
    conf     = %[3]q
    pid_file = %[4]q
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "nginx_upstream" "in" {
    file     = %[1]q
    server   = service.meta.addr
    state    = "up"
    nginx    = %[2]q
    conf     = %[3]q
    pid_file = %[4]q
  }
}
`, upstream, nginx, conf, pidFile)
}

// Plan is pipeline, the instances as services api.1..N, and planBlock
// (such as `plan "rolling" { max_parallel = 1 }`).
func Plan(pipeline string, insts []Instance, planBlock string) string {
	var b strings.Builder
	b.WriteString(pipeline)
	for _, in := range insts {
		fmt.Fprintf(&b, `
service %q {
  unit        = %q
  type        = "api"
  working_dir = %q
  meta        = { instance = %q, lb_server = %q, addr = %q }
  health "http" {
    url      = "http://%s/health"
    timeout  = "3s"
    retries  = 2
    interval = "100ms"
  }
}
`, in.Service, in.Unit, in.Dir, in.Name, in.LBServer(), in.Addr(), in.Addr())
	}
	b.WriteString(planBlock)
	return b.String()
}

// Canary is the service as one plan service with template instances
// (instances 1..N, each on its port from a map), rolled one instance at a
// time with HAProxy drain, the first instance a canary observed for
// observe: its health check and an analysis of its /metrics (errors.rate
// at most 0.01), promoted automatically. base is where the instances'
// working directories are (base/N); with --deploy each instance gets
// deploy_path/N. extra is more of the canary block (auto_promote = false).
func Canary(socket, base string, insts []Instance, observe, interval, extra string) string {
	var ports []string
	for _, in := range insts {
		ports = append(ports, fmt.Sprintf("%q = %d", in.Name, in.Port))
	}
	var names []string
	for _, in := range insts {
		names = append(names, fmt.Sprintf("%q", in.Name))
	}
	return fmt.Sprintf(`
pipeline "api" {
  step "haproxy_drain" "drain" {
    socket  = %[1]q
    backend = "api"
    server  = "s${service.instance}"
  }
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.instance}"
    to   = "%[2]s/${service.instance}"
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "haproxy_ready" "ready" {
    socket  = %[1]q
    backend = "api"
    server  = "s${service.instance}"
  }
}

service "api" {
  unit      = %[3]q
  type      = "api"
  instances = [%[4]s]
  port      = { %[5]s }
  health "http" {
    url      = "http://127.0.0.1:${service.port}/health"
    timeout  = "3s"
    retries  = 2
    interval = "100ms"
  }
  canary {
    count    = 1
    observe  = %[6]q
    interval = %[7]q
    %[8]s
    analysis "http" {
      url       = "http://127.0.0.1:${service.port}/metrics"
      json_path = "errors.rate"
      max       = 0.01
    }
  }
}

plan "canary" { max_parallel = 1 }
`, socket, base, Template, strings.Join(names, ", "), strings.Join(ports, ", "), observe, interval, extra)
}

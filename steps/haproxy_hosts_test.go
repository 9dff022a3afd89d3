package steps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner"
)

// TestHAProxyStepsOnHosts: a health URL may depend on the host (a port
// looked up by host.name); an HAProxy step in a service with hosts
// compiles when the runtime API is a TCP address (reached from the
// controller, as an http check is), each instance naming its own server
// with host.name; with a unix socket path it is refused with file:line
// and what to do instead, rather than acting on the controller's socket
// for an instance elsewhere.
func TestHAProxyStepsOnHosts(t *testing.T) {
	plan := func(socket string) string {
		return `
host "app1" { address = "10.0.3.17" }
host "app2" { address = "10.0.3.18" }
pipeline "lb" {
  step "haproxy_drain" "drain" {
    socket  = "` + socket + `"
    backend = "api"
    server  = "api_${host.name}"
  }
  step "restart" "restart" {}
  step "haproxy_ready" "ready" {
    socket  = "` + socket + `"
    backend = "api"
    server  = "api_${host.name}"
  }
}
service "api" {
  unit     = "api.service"
  hosts    = ["app1", "app2"]
  pipeline = "lb"
  # A port per host: a value that only a real host can give.
  health "http" { url = "http://${host.address}:${ {app1 = 3101, app2 = 3102}[host.name] }/health" }
}
`
	}
	compile := func(t *testing.T, src string) (*planner.Plan, string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "main.hcl")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, diags := dsl.Load(path, dsl.LoadOptions{})
		if diags.HasErrors() {
			t.Fatalf("load: %v", diags)
		}
		p, diags := planner.Compile(cfg, planner.Options{StepTypes: Types()})
		var b strings.Builder
		for _, d := range diags {
			if d.Subject != nil {
				b.WriteString(d.Subject.String() + ": ")
			}
			b.WriteString(d.Summary + ": " + d.Detail + "\n")
		}
		return p, b.String()
	}

	p, diags := compile(t, plan("lb-1.internal:9999"))
	if diags != "" {
		t.Fatalf("a TCP runtime API on hosts was refused:\n%s", diags)
	}
	var servers []string
	for _, svc := range p.Services {
		for _, st := range svc.Steps {
			if st.Type == TypeHAProxyDrain {
				servers = append(servers, svc.Name+"="+st.Args["server"].AsString())
			}
		}
	}
	if got := strings.Join(servers, ","); got != "api@app1=api_app1,api@app2=api_app2" {
		t.Errorf("drained servers %s, want one per instance named after its host", got)
	}
	var urls []string
	for _, svc := range p.Services {
		urls = append(urls, svc.Health.URL)
	}
	if got := strings.Join(urls, " "); got != "http://10.0.3.17:3101/health http://10.0.3.18:3102/health" {
		t.Errorf("health URLs %s, want each host's own port", got)
	}

	_, diags = compile(t, plan("/run/haproxy/admin.sock"))
	for _, want := range []string{"main.hcl:5,", "Step type does not run on hosts", "TCP address", "host.name"} {
		if !strings.Contains(diags, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, diags)
		}
	}
}

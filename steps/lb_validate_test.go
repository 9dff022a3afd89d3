package steps

import (
	"strings"
	"testing"
)

// plan validate's diagnostics for the load balancer steps' arguments.
func TestLoadBalancerStepsValidate(t *testing.T) {
	hap := "backend = \"api\"\nserver = \"s1\"\n"
	ngx := "file = \"/etc/nginx/conf.d/api.conf\"\nserver = \"127.0.0.1:8001\"\n"
	tests := []struct {
		name, typ, src string
		summaries      []string // all diagnostics, in order; none = valid
		line           int      // of the first diagnostic's subject
	}{
		{"drain unix", TypeHAProxyDrain, hap + `socket = "/run/haproxy/admin.sock"`, nil, 0},
		{"drain tcp", TypeHAProxyDrain, hap + "socket = \"127.0.0.1:9999\"\ntimeout = \"2m\"\nallow_last = true", nil, 0},
		{"ready", TypeHAProxyReady, hap + `socket = "ipv4@127.0.0.1:9999"`, nil, 0},
		{"drain relative socket", TypeHAProxyDrain, hap + `socket = "admin.sock"`, []string{"Invalid HAProxy socket"}, 3},
		{"drain missing server", TypeHAProxyDrain, "backend = \"api\"\nsocket = \"/s\"", []string{"Missing required argument"}, 0},
		{"ready bad names and timeout", TypeHAProxyReady, "backend = \"api/x\"\nserver = \"s 1\"\nsocket = \"/s\"\ntimeout = \"soon\"",
			[]string{"Invalid HAProxy backend name", "Invalid HAProxy server name", "Invalid duration"}, 1},
		{"ready allow_last is drain's", TypeHAProxyReady, hap + "socket = \"/s\"\nallow_last = true", []string{"Unsupported argument"}, 4},
		{"nginx down", TypeNginxUpstream, ngx + "state = \"down\"\nconf = \"/etc/nginx/nginx.conf\"\npid_file = \"/run/nginx.pid\"\nnginx = \"/usr/sbin/nginx\"\nupstream = \"api\"\ntimeout = \"10s\"", nil, 0},
		{"nginx bad state", TypeNginxUpstream, ngx + `state = "drain"`, []string{"Invalid upstream state"}, 3},
		{"nginx relative paths", TypeNginxUpstream, "file = \"api.conf\"\nserver = \"127.0.0.1:8001\"\nstate = \"up\"\nconf = \"nginx.conf\"",
			[]string{"Relative path", "Relative path"}, 1},
		{"nginx bad server", TypeNginxUpstream, "file = \"/f\"\nserver = \"127.0.0.1:8001;\"\nstate = \"up\"", []string{"Invalid upstream server"}, 2},
		{"nginx empty program", TypeNginxUpstream, ngx + "state = \"up\"\nnginx = \"\"", []string{"Empty command"}, 4},
		{"nginx missing state", TypeNginxUpstream, ngx, []string{"Missing required argument"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := decodeStep(t, tt.typ, tt.src)
			var got []string
			for _, d := range diags {
				got = append(got, d.Summary)
				if d.Detail == "" || strings.HasSuffix(d.Summary, ".") {
					t.Errorf("diagnostic %q: want a detail and a summary without a period", d.Summary)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.summaries, "|") {
				t.Fatalf("diagnostics %q, want %q (%v)", got, tt.summaries, diags)
			}
			if tt.line > 0 && (diags[0].Subject == nil || diags[0].Subject.Start.Line != tt.line) {
				t.Errorf("subject = %v, want line %d", diags[0].Subject, tt.line)
			}
		})
	}
}

// Preflight finds the nginx program before a run changes anything.
func TestNginxUpstreamNeedsItsProgram(t *testing.T) {
	st := Types()[TypeNginxUpstream]
	for src, want := range map[string]string{
		"file = \"/f\"\nserver = \"a:1\"\nstate = \"up\"":                                    "nginx",
		"file = \"/f\"\nserver = \"a:1\"\nstate = \"up\"\nnginx = \"/opt/nginx/sbin/nginx\"": "/opt/nginx/sbin/nginx",
	} {
		args, diags := decodeStep(t, TypeNginxUpstream, src)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		n := st.Needs(args, testService())
		if len(n.Programs) != 1 || n.Programs[0].Name != want {
			t.Errorf("needs %+v, want the program %q", n, want)
		}
	}
}

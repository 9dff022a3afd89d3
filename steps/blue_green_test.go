package steps

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/proxytest"
	"github.com/rollout-sh/rollout/planner"
)

func bgColorsArg(blue, green string) cty.Value {
	col := func(addr string) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{
			"address": cty.StringVal(addr), "unit": cty.NullVal(cty.String), "server": cty.NullVal(cty.String),
			"dir": cty.NullVal(cty.String), "health": cty.NullVal(cty.String),
		})
	}
	m := map[string]cty.Value{"blue": col(blue)}
	if green != "" {
		m["green"] = col(green)
	}
	return cty.MapVal(m)
}

// validateBlueGreen refuses what cannot work, each problem once.
func TestBlueGreenValidate(t *testing.T) {
	nginx := cty.ObjectVal(map[string]cty.Value{"file": cty.StringVal("/etc/nginx/conf.d/api.conf")})
	haproxy := cty.ObjectVal(map[string]cty.Value{"socket": cty.StringVal("/run/haproxy.sock"), "backend": cty.StringVal("api")})
	tests := []struct {
		name string
		args map[string]cty.Value
		want []string
	}{
		{"valid nginx", map[string]cty.Value{"colors": bgColorsArg("127.0.0.1:8001", "127.0.0.1:8002"), "nginx": nginx}, nil},
		{"valid haproxy", map[string]cty.Value{"colors": bgColorsArg("127.0.0.1:8001", "127.0.0.1:8002"), "haproxy": haproxy}, nil},
		{"one color", map[string]cty.Value{"colors": bgColorsArg("127.0.0.1:8001", ""), "nginx": nginx}, []string{"Blue-green needs two colors"}},
		{"no load balancer", map[string]cty.Value{"colors": bgColorsArg("127.0.0.1:8001", "127.0.0.1:8002")}, []string{"Blue-green without a load balancer"}},
		{"two load balancers", map[string]cty.Value{"colors": bgColorsArg("127.0.0.1:8001", "127.0.0.1:8002"), "nginx": nginx, "haproxy": haproxy}, []string{"Two load balancers for one switch"}},
		{"same port", map[string]cty.Value{"colors": bgColorsArg("127.0.0.1:8001", "127.0.0.1:8001"), "nginx": nginx}, []string{"Colors on the same port"}},
		{"same port, one on every interface", map[string]cty.Value{"colors": bgColorsArg("0.0.0.0:8001", "127.0.0.1:8001"), "nginx": nginx}, []string{"Colors on the same port"}},
		{"same port, two addresses", map[string]cty.Value{"colors": bgColorsArg("127.0.0.2:8001", "127.0.0.1:8001"), "nginx": nginx}, nil},
		{"no port", map[string]cty.Value{"colors": bgColorsArg("127.0.0.1", "127.0.0.1:8002"), "nginx": nginx}, []string{"Invalid color address"}},
		{"deploy without dirs", map[string]cty.Value{"colors": bgColorsArg("127.0.0.1:8001", "127.0.0.1:8002"), "nginx": nginx, "from": cty.StringVal("/build")}, []string{"Deploy without code directories"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := validateBlueGreen(tt.args, func(string) hcl.Range { return hcl.Range{} })
			var got []string
			for _, d := range diags {
				got = append(got, d.Summary)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("diagnostics %q, want %q", got, tt.want)
			}
		})
	}
}

// The live color is read from the nginx upstream file: the one not down.
func TestBlueGreenNginxLive(t *testing.T) {
	colors := [2]bgColor{{Name: "blue", Address: "127.0.0.1:8001"}, {Name: "green", Address: "127.0.0.1:8002"}}
	tests := []struct {
		name, file string
		want       int
		err        string
	}{
		{"blue live", "upstream api {\n  server 127.0.0.1:8001;\n  server 127.0.0.1:8002 down;\n}\n", 0, ""},
		{"green live", "upstream api {\n  server 127.0.0.1:8001 max_fails=1 down;\n  server 127.0.0.1:8002 weight=2;\n}\n", 1, ""},
		{"both live", "upstream api {\n  server 127.0.0.1:8001;\n  server 127.0.0.1:8002;\n}\n", 0, "both colors are in traffic"},
		{"none live", "upstream api {\n  server 127.0.0.1:8001 down;\n  server 127.0.0.1:8002 down;\n}\n", 0, "no color is in traffic"},
		{"green missing", "upstream api {\n  server 127.0.0.1:8001;\n}\n", 0, "no server 127.0.0.1:8002 for color green"},
		{"half down", "upstream a {\n  server 127.0.0.1:8001;\n  server 127.0.0.1:8002 down;\n}\nupstream b {\n  server 127.0.0.1:8001 down;\n  server 127.0.0.1:8002 down;\n}\n", 0, "down in 1 of its 2 server lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "upstream.conf")
			writeTestFile(t, file, tt.file)
			n := &bgNginx{t: nginxTarget{file: file}}
			got, evidence, err := n.live(t.Context(), colors)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want it to say %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("live %d (%s), %v; want %d", got, evidence, err, tt.want)
			}
		})
	}
}

// A blue-green undo survives the journal: recover rebuilds it as it was.
func TestBlueGreenRecordRoundTrip(t *testing.T) {
	u := &bgUndo{
		Live:    bgColor{Name: "blue", Unit: "api@blue.service", Address: "127.0.0.1:8001", Server: "blue", Dir: "/srv/api/blue", Health: "http://127.0.0.1:8001/health"},
		Idle:    bgColor{Name: "green", Unit: "api@green.service", Address: "127.0.0.1:8002", Server: "green", Dir: "/srv/api/green", Health: "http://127.0.0.1:8002/health"},
		LB:      bgRecord{Kind: "nginx", File: "/etc/nginx/conf.d/api.conf", Upstream: "api", Nginx: "nginx", PidFile: "/run/nginx.pid", Timeout: "30s"},
		Health:  planner.Health{Kind: "http", Timeout: 3 * time.Second, Retries: 2, Interval: 100 * time.Millisecond},
		Release: &releaseUndo{base: "/srv/api/green", back: "20260101T000000Z-000001", discard: "20260102T000000Z-000002"},
		Started: true, Switched: true, StoppedOld: true,
		unitJob: unitJob{timeout: time.Minute},
	}
	back, err := Recover(u.Record(), Deps{Systemd: newScripted()})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := back.(*bgUndo)
	if !ok {
		t.Fatalf("recovered %T", back)
	}
	if !reflect.DeepEqual(r.Live, u.Live) || !reflect.DeepEqual(r.Idle, u.Idle) || r.LB != u.LB || !reflect.DeepEqual(r.Health, u.Health) ||
		!r.Started || !r.Switched || !r.StoppedOld || r.IdleWasActive {
		t.Errorf("recovered %+v\nwant %+v", r, u)
	}
	if r.Release == nil || r.Release.base != u.Release.base || r.Release.back != u.Release.back || r.Release.discard != u.Release.discard {
		t.Errorf("recovered release %+v, want %+v", r.Release, u.Release)
	}
	if r.unitJob.timeout != time.Minute || r.Describe() != u.Describe() {
		t.Errorf("recovered timeout %s, %q; want %q", r.unitJob.timeout, r.Describe(), u.Describe())
	}
	if _, err := Recover(executor.UndoRecord{Kind: RecordBlueGreen, Args: map[string]string{"state": "{"}}, Deps{Systemd: newScripted()}); err == nil {
		t.Error("a torn record was recovered")
	}
}

// The HAProxy switch against a real HAProxy: the live color is the server
// in traffic; a switch readies the new one (waiting until HAProxy's checks
// see it up) and drains the old one, and HAProxy then sends every request
// to the new color.
func TestBlueGreenHAProxySwitch(t *testing.T) {
	f := startHAProxy(t)
	colors := [2]bgColor{{Name: "blue", Server: "s1"}, {Name: "green", Server: "s2"}}
	h := &bgHAProxy{api: f.api(), backend: "api", timeout: 10 * time.Second}
	ctx := t.Context()
	if _, _, err := h.live(ctx, colors); err == nil || !strings.Contains(err.Error(), "both colors are in traffic") {
		t.Fatalf("both servers up: %v, want a refusal", err)
	}
	if err := f.api().setState(ctx, "api", "s2", "maint"); err != nil {
		t.Fatal(err)
	}
	if live, ev, err := h.live(ctx, colors); err != nil || live != 0 {
		t.Fatalf("live %d (%s), %v; want blue", live, ev, err)
	}
	if err := h.switchTo(ctx, nil, colors[1], colors[0]); err != nil {
		t.Fatal(err)
	}
	if live, ev, err := h.live(ctx, colors); err != nil || live != 1 {
		t.Fatalf("after the switch: live %d (%s), %v; want green", live, ev, err)
	}
	for range 10 {
		if got := f.get(t, "/"); got != "s2" {
			t.Fatalf("after the switch a request went to %q, want s2 (green)", got)
		}
	}
	if err := h.switchTo(ctx, nil, colors[0], colors[1]); err != nil {
		t.Fatal(err)
	}
	if live, ev, err := h.live(ctx, colors); err != nil || live != 0 {
		t.Fatalf("after switching back: live %d (%s), %v; want blue", live, ev, err)
	}
}

// The nginx switch against a real nginx: one rewrite swaps the down marks,
// nginx -t, reload, and the old workers are gone when it returns.
func TestBlueGreenNginxSwitch(t *testing.T) {
	f := startNginx(t)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", f.servers[i].port) }
	colors := [2]bgColor{{Name: "blue", Address: addr(0)}, {Name: "green", Address: addr(1)}}
	n := &bgNginx{t: nginxTarget{file: f.upstream, nginx: proxytest.Binary(t, "nginx"), conf: f.conf,
		pidFile: filepath.Join(f.dir, "nginx.pid"), timeout: 10 * time.Second}}
	ctx := t.Context()
	writeTestFile(t, f.upstream, "upstream api {\n    server "+addr(0)+";\n    server "+addr(1)+" down;\n}\n")
	if err := n.t.reload(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if live, ev, err := n.live(ctx, colors); err != nil || live != 0 {
		t.Fatalf("live %d (%s), %v; want blue", live, ev, err)
	}
	if err := n.switchTo(ctx, nil, colors[1], colors[0]); err != nil {
		t.Fatal(err)
	}
	if live, ev, err := n.live(ctx, colors); err != nil || live != 1 {
		t.Fatalf("after the switch: live %d (%s), %v; want green", live, ev, err)
	}
	for range 10 {
		if got := f.get(t, "/"); got != "s2" {
			t.Fatalf("after the switch a request went to %q, want s2 (green)", got)
		}
	}
	b, _ := os.ReadFile(f.upstream)
	if want := "upstream api {\n    server " + addr(0) + " down;\n    server " + addr(1) + ";\n}\n"; string(b) != want {
		t.Errorf("upstream file after the switch:\n%s\nwant:\n%s", b, want)
	}
}

// The step's colors must be the service's colors, and a color's unit
// defaults to the service's template instance.
func TestBlueGreenBuildColors(t *testing.T) {
	args := map[string]cty.Value{
		"colors": bgColorsArg("127.0.0.1:8001", "127.0.0.1:8002"),
		"nginx":  cty.ObjectVal(map[string]cty.Value{"file": cty.StringVal("/etc/nginx/conf.d/api.conf")}),
	}
	b := &builder{sd: newScripted()}
	svc := testService()
	svc.Unit, svc.Colors = "api@.service", []string{"blue", "red"}
	if _, err := b.build(svc, &planner.Step{Name: "switch", Type: TypeBlueGreen, Args: args}); err == nil || !strings.Contains(err.Error(), "not the service's colors (blue, red)") {
		t.Fatalf("build with other colors: %v", err)
	}
	svc.Colors = []string{"green", "blue"}
	s, err := b.build(svc, &planner.Step{Name: "switch", Type: TypeBlueGreen, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	bg := s.(*blueGreenStep)
	if bg.colors[0].Unit != "api@blue.service" || bg.colors[1].Unit != "api@green.service" || bg.colors[1].Health != "http://127.0.0.1:8002/health" {
		t.Errorf("colors %+v", bg.colors)
	}
	svc.Unit = "api.service"
	if _, err := b.build(svc, &planner.Step{Name: "switch", Type: TypeBlueGreen, Args: args}); err == nil || !strings.Contains(err.Error(), "not a template unit") {
		t.Fatalf("build on a plain unit without color units: %v", err)
	}
}

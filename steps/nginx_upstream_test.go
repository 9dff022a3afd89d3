package steps

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/proxytest"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/planner"
)

func TestNginxUpstreamRewrite(t *testing.T) {
	const file = `# managed by hand
upstream api {
    server 127.0.0.1:8001 weight=2;   # the big one
    server 127.0.0.1:8002;
    server "127.0.0.1:8003" max_fails=3 down;
    keepalive 8;
}

upstream admin { server 127.0.0.1:8002 backup; server 127.0.0.1:9000; }
`
	c, err := parseNginxUpstreams(file)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		upstream, addr string
		down           bool
		want           string
	}{
		{"api", "127.0.0.1:8001", true, strings.Replace(file, "server 127.0.0.1:8001 weight=2;", "server 127.0.0.1:8001 weight=2 down;", 1)},
		{"api", "127.0.0.1:8003", false, strings.Replace(file, `server "127.0.0.1:8003" max_fails=3 down;`, `server "127.0.0.1:8003" max_fails=3;`, 1)},
		// Without upstream, every upstream's line for the address.
		{"", "127.0.0.1:8002", true, strings.Replace(strings.Replace(file,
			"server 127.0.0.1:8002;", "server 127.0.0.1:8002 down;", 1),
			"server 127.0.0.1:8002 backup;", "server 127.0.0.1:8002 backup down;", 1)},
	}
	for _, tt := range tests {
		mine := c.find(tt.upstream, tt.addr)
		if len(mine) == 0 {
			t.Fatalf("%s %s not found", tt.upstream, tt.addr)
		}
		if got := c.withDown(mine, func(int) bool { return tt.down }); got != tt.want {
			t.Errorf("%s %s down=%v:\n got:\n%s\nwant:\n%s", tt.upstream, tt.addr, tt.down, got, tt.want)
		}
	}
	if got, want := c.describe(), "api: 127.0.0.1:8001, 127.0.0.1:8002, 127.0.0.1:8003; admin: 127.0.0.1:8002, 127.0.0.1:9000"; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
	// 8001 and 8002 down would leave api with nothing (8003 is down).
	if err := c.checkOthersUp(append(c.find("api", "127.0.0.1:8001"), c.find("api", "127.0.0.1:8002")...), nginxTarget{file: "f", server: "x"}); err == nil ||
		!strings.Contains(err.Error(), "upstream api would have no other server in traffic") {
		t.Errorf("checkOthersUp: %v", err)
	}
	// A backup server does not count as one in traffic.
	if err := c.checkOthersUp(c.find("admin", "127.0.0.1:9000"), nginxTarget{file: "f", server: "x"}); err == nil {
		t.Error("checkOthersUp counted a backup server")
	}

	for _, bad := range []string{"upstream api {\n server 127.0.0.1:1\n}\n", "upstream api {\n", "}\n", "upstream api { server \"x; }"} {
		if _, err := parseNginxUpstreams(bad); err == nil {
			t.Errorf("parse accepted %q", bad)
		}
	}
}

type nginxFixture struct {
	dir, conf, upstream, url string
	servers                  []*backendServer
	b                        *builder
	svc                      *planner.Service
}

func startNginx(t *testing.T) *nginxFixture {
	t.Helper()
	bin := proxytest.Binary(t, "nginx")
	dir := t.TempDir()
	f := &nginxFixture{dir: dir, conf: filepath.Join(dir, "nginx.conf"), upstream: filepath.Join(dir, "upstream.conf"), b: &builder{}, svc: testService()}
	var servers []proxytest.Backend
	for _, name := range []string{"s1", "s2"} {
		port := systemdtest.FreePort(t)
		f.servers = append(f.servers, startBackend(t, name, port))
		servers = append(servers, proxytest.Backend{Name: name, Port: port})
	}
	port := systemdtest.FreePort(t)
	f.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	writeTestFile(t, f.upstream, proxytest.NginxUpstream("api", servers))
	if err := os.Chmod(f.upstream, 0o640); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, f.conf, proxytest.NginxConfig(proxytest.NginxOptions{Port: port, Dir: dir, Upstream: "api", Include: f.upstream}))
	log := filepath.Join(dir, "nginx.out")
	proxytest.Start(t, log, bin, "-c", f.conf)
	proxytest.WaitListening(t, port, log)
	return f
}

func (f *nginxFixture) step(t *testing.T, server *backendServer, state string, extra map[string]cty.Value) executor.Step {
	t.Helper()
	args := map[string]cty.Value{
		"file":     cty.StringVal(f.upstream),
		"server":   cty.StringVal(fmt.Sprintf("127.0.0.1:%d", server.port)),
		"state":    cty.StringVal(state),
		"conf":     cty.StringVal(f.conf),
		"pid_file": cty.StringVal(filepath.Join(f.dir, "nginx.pid")),
		"nginx":    cty.StringVal(proxytest.Binary(t, "nginx")),
	}
	for k, v := range extra {
		args[k] = v
	}
	return mustBuild(t, f.b, f.svc, &planner.Step{Name: "lb", Type: TypeNginxUpstream, Args: args})
}

func (f *nginxFixture) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(f.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestNginxUpstreamDownWaitsForOldWorkersThenReadmits(t *testing.T) {
	f := startNginx(t)
	before := readTestFile(t, f.upstream)
	// A request in flight through nginx on one server.
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(f.url + "/slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	var busy *backendServer
	select {
	case <-f.servers[0].slowIn:
		busy = f.servers[0]
	case <-f.servers[1].slowIn:
		busy = f.servers[1]
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request reached no server")
	}
	other := f.servers[0]
	if busy == other {
		other = f.servers[1]
	}
	var released atomic.Bool
	go func() {
		// Release once the file says down: the step is then reloading
		// and must still wait for the old worker holding the request.
		for !strings.Contains(readFileQuiet(f.upstream), "down") {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		released.Store(true)
		close(busy.release)
	}()
	env := newTestEnv(f.svc)
	undo, err := f.step(t, busy, "down", nil).Do(t.Context(), &env.Env)
	if err != nil {
		t.Fatalf("down: %v\n%s", err, env.output())
	}
	if !released.Load() {
		t.Fatalf("down returned while nginx's old worker still held a request to %s\n%s", busy.name, env.output())
	}
	if r := <-got; r != busy.name {
		t.Errorf("the in-flight request got %q", r)
	}
	want := strings.Replace(before, fmt.Sprintf("127.0.0.1:%d;", busy.port), fmt.Sprintf("127.0.0.1:%d down;", busy.port), 1)
	if after := readTestFile(t, f.upstream); after != want {
		t.Errorf("upstream file:\n%s\nwant:\n%s", after, want)
	}
	if fi, err := os.Stat(f.upstream); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the rewrite changed the file's mode: %v %v", fi.Mode(), err)
	}
	hits := busy.hits.Load()
	for range 10 {
		if r := f.get(t, "/"); r != other.name {
			t.Errorf("a request went to %q while %s was down", r, busy.name)
		}
	}
	if busy.hits.Load() != hits {
		t.Error("the server taken down got requests")
	}

	// The last server in traffic is refused.
	if _, err := f.step(t, other, "down", nil).Do(t.Context(), &env.Env); err == nil || !strings.Contains(err.Error(), "upstream api would have no other server in traffic") {
		t.Errorf("taking the last server down: %v", err)
	}

	if _, ok := undo.(executor.Readmitter); !ok {
		t.Fatalf("the undo of down (%T) is not a Readmitter", undo)
	}
	if err := undo.Undo(t.Context(), &env.Env); err != nil {
		t.Fatalf("undo: %v\n%s", err, env.output())
	}
	if after := readTestFile(t, f.upstream); after != before {
		t.Errorf("after the undo the file is\n%s\nwant it as before:\n%s", after, before)
	}
	seen := map[string]bool{}
	for range 10 {
		seen[f.get(t, "/")] = true
	}
	if !seen[busy.name] {
		t.Errorf("after the undo no request reached %s", busy.name)
	}
}

// A configuration nginx refuses is never reloaded: the old file is back.
func TestNginxUpstreamRefusedConfig(t *testing.T) {
	f := startNginx(t)
	before := readTestFile(t, f.upstream)
	env := newTestEnv(f.svc)
	undo, err := f.step(t, f.servers[1], "down", map[string]cty.Value{"nginx": cty.StringVal("/bin/false")}).Do(t.Context(), &env.Env)
	if err == nil || !strings.Contains(err.Error(), "nginx refused the new upstream file, the old one is back") || undo != nil {
		t.Fatalf("undo %v, err %v", undo, err)
	}
	if after := readTestFile(t, f.upstream); after != before {
		t.Errorf("file changed:\n%s", after)
	}
	// Unknown server: nothing changes, the error lists what there is.
	_, err = f.step(t, &backendServer{port: 1}, "down", nil).Do(t.Context(), &env.Env)
	if err == nil || !strings.Contains(err.Error(), "no server 127.0.0.1:1 in "+f.upstream+" (its upstreams: api: 127.0.0.1:") {
		t.Errorf("unknown server: %v", err)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFileQuiet(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

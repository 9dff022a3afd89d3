package steps

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/proxytest"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/planner"
)

// Tests of haproxy_drain and haproxy_ready against a real HAProxy in front
// of two servers of this test.

// backendServer is an HTTP server on loopback that HAProxy balances to:
// /health answers 200, /slow holds its request until release is closed,
// / says which server answered.
type backendServer struct {
	name    string
	port    int
	srv     *http.Server
	slowIn  chan struct{} // a /slow request arrived
	release chan struct{}
	hits    atomic.Int64
}

func startBackend(t *testing.T, name string, port int) *backendServer {
	t.Helper()
	b := &backendServer{name: name, port: port, slowIn: make(chan struct{}, 16), release: make(chan struct{})}
	b.serve(t)
	return b
}

func (b *backendServer) serve(t *testing.T) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		b.slowIn <- struct{}{}
		<-b.release
		fmt.Fprint(w, b.name)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		fmt.Fprint(w, b.name)
	})
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", b.port))
	if err != nil {
		t.Fatal(err)
	}
	b.srv = &http.Server{Handler: mux}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
}

func (b *backendServer) stop() { _ = b.srv.Close() }

type haproxyFixture struct {
	socket, url string
	servers     []*backendServer
	b           *builder
	svc         *planner.Service
}

func startHAProxy(t *testing.T) *haproxyFixture {
	t.Helper()
	bin := proxytest.Binary(t, "haproxy")
	dir := t.TempDir()
	f := &haproxyFixture{socket: filepath.Join(dir, "admin.sock"), b: &builder{}, svc: testService()}
	var servers []proxytest.Backend
	for _, name := range []string{"s1", "s2"} {
		port := systemdtest.FreePort(t)
		f.servers = append(f.servers, startBackend(t, name, port))
		servers = append(servers, proxytest.Backend{Name: name, Port: port})
	}
	port := systemdtest.FreePort(t)
	f.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "haproxy.cfg")
	writeTestFile(t, cfg, proxytest.HAProxyConfig(proxytest.HAProxyOptions{
		Port: port, Socket: f.socket, Backend: "api", Servers: servers, CheckURL: "/health",
	}))
	log := filepath.Join(dir, "haproxy.log")
	proxytest.Start(t, log, bin, "-db", "-f", cfg)
	proxytest.WaitListening(t, port, log)
	f.waitStatus(t, "s1", "UP")
	f.waitStatus(t, "s2", "UP")
	return f
}

func (f *haproxyFixture) api() haproxyAPI { return haproxyAPI{addr: f.socket} }

func (f *haproxyFixture) status(t *testing.T, server string) haproxyServer {
	t.Helper()
	s, _, err := f.api().server(t.Context(), "api", server)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *haproxyFixture) waitStatus(t *testing.T, server, status string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Errors are retried: HAProxy may bind its admin socket after
		// the frontend's port.
		s, _, err := f.api().server(t.Context(), "api", server)
		if err == nil && s.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s (%v), want %s", server, s.Status, err, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *haproxyFixture) step(t *testing.T, typ, server string, extra map[string]cty.Value) executor.Step {
	t.Helper()
	args := map[string]cty.Value{
		"socket":  cty.StringVal(f.socket),
		"backend": cty.StringVal("api"),
		"server":  cty.StringVal(server),
	}
	for k, v := range extra {
		args[k] = v
	}
	return mustBuild(t, f.b, f.svc, &planner.Step{Name: typ, Type: typ, Args: args})
}

func (f *haproxyFixture) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(f.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestHAProxyDrainWaitsForSessionsThenReadmits(t *testing.T) {
	f := startHAProxy(t)
	// A request in flight on one server: its drain must wait for it.
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
		// Release only once HAProxy shows the server draining: the step
		// must still be waiting for the request then.
		for {
			s, _, err := f.api().server(context.Background(), "api", busy.name)
			if err == nil && s.Status == "DRAIN" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		released.Store(true)
		close(busy.release)
	}()
	env := newTestEnv(f.svc)
	undo, err := f.step(t, TypeHAProxyDrain, busy.name, nil).Do(t.Context(), &env.Env)
	if err != nil {
		t.Fatalf("drain: %v\n%s", err, env.output())
	}
	if !released.Load() {
		t.Fatalf("drain returned while a request was still in flight on %s\n%s", busy.name, env.output())
	}
	if r := <-got; r != busy.name {
		t.Errorf("the in-flight request got %q, want it answered by %s", r, busy.name)
	}
	if s := f.status(t, busy.name); s.Status != "DRAIN" || s.Sessions != 0 {
		t.Errorf("after drain: %+v", s)
	}
	// Out of traffic: new requests all go to the other server.
	before := busy.hits.Load()
	for range 10 {
		if r := f.get(t, "/"); r != other.name {
			t.Errorf("a request went to %q while %s was drained", r, busy.name)
		}
	}
	if busy.hits.Load() != before {
		t.Errorf("the drained server got requests")
	}

	// The undo is a readmission, run after the service is back.
	if _, ok := undo.(executor.Readmitter); !ok {
		t.Fatalf("drain's undo %T is not an executor.Readmitter", undo)
	}
	if err := undo.Undo(t.Context(), &env.Env); err != nil {
		t.Fatalf("undo: %v", err)
	}
	if s := f.status(t, busy.name); !s.inTraffic() {
		t.Errorf("after the undo %s is %s, want in traffic", busy.name, s.Status)
	}
	seen := map[string]bool{}
	for range 10 {
		seen[f.get(t, "/")] = true
	}
	if !seen[busy.name] {
		t.Errorf("after the undo no request reached %s (%v)", busy.name, seen)
	}
}

func TestHAProxyReadyWaitsUntilUp(t *testing.T) {
	f := startHAProxy(t)
	env := newTestEnv(f.svc)
	if _, err := f.step(t, TypeHAProxyDrain, "s2", nil).Do(t.Context(), &env.Env); err != nil {
		t.Fatal(err)
	}
	// The instance stops, as a restart would stop it; HAProxy's checks
	// see it down.
	f.servers[1].stop()
	f.waitStatus(t, "s2", "DOWN")

	_, err := f.step(t, TypeHAProxyReady, "s2", map[string]cty.Value{"timeout": cty.StringVal("600ms")}).Do(t.Context(), &env.Env)
	if err == nil || !strings.Contains(err.Error(), "api/s2 is still DOWN after 600ms") {
		t.Fatalf("ready of a server that is down: err = %v, want it to say the server is still DOWN", err)
	}

	// Back up: ready returns once HAProxy sends it traffic.
	f.servers[1].serve(t)
	undo, err := f.step(t, TypeHAProxyReady, "s2", nil).Do(t.Context(), &env.Env)
	if err != nil {
		t.Fatalf("ready: %v\n%s", err, env.output())
	}
	if s := f.status(t, "s2"); s.Status != "UP" {
		t.Errorf("ready returned with s2 %s, want UP", s.Status)
	}
	if !strings.Contains(undo.Describe(), "set HAProxy server api/s2 to drain") {
		t.Errorf("ready's undo: %q", undo.Describe())
	}
	if err := undo.Undo(t.Context(), &env.Env); err != nil {
		t.Fatal(err)
	}
	if s := f.status(t, "s2"); s.Status != "DRAIN" {
		t.Errorf("ready's undo left s2 %s, want DRAIN", s.Status)
	}
}

func TestHAProxyDrainRefusals(t *testing.T) {
	f := startHAProxy(t)
	env := newTestEnv(f.svc)
	if _, err := f.step(t, TypeHAProxyDrain, "s1", nil).Do(t.Context(), &env.Env); err != nil {
		t.Fatal(err)
	}
	// The last server in traffic is never drained unless asked for.
	_, err := f.step(t, TypeHAProxyDrain, "s2", nil).Do(t.Context(), &env.Env)
	if err == nil || !strings.Contains(err.Error(), `refusing to drain api/s2: no other server of backend "api" is in traffic (s1 DRAIN)`) {
		t.Fatalf("draining the last server: err = %v", err)
	}
	if s := f.status(t, "s2"); s.Status != "UP" {
		t.Errorf("a refused drain changed s2 to %s", s.Status)
	}
	undo, err := f.step(t, TypeHAProxyDrain, "s2", map[string]cty.Value{"allow_last": cty.True}).Do(t.Context(), &env.Env)
	if err != nil || undo == nil {
		t.Fatalf("allow_last: undo %v, err %v", undo, err)
	}

	// A server someone else holds out is left as it is, and not readmitted.
	undo, err = f.step(t, TypeHAProxyDrain, "s1", nil).Do(t.Context(), &env.Env)
	if err != nil || undo != nil {
		t.Errorf("draining a server already in DRAIN: undo %v, err %v; want no undo, no error", undo, err)
	}

	// Names HAProxy does not know.
	_, err = f.step(t, TypeHAProxyDrain, "s9", nil).Do(t.Context(), &env.Env)
	if err == nil || err.Error() != `HAProxy backend "api" has no server "s9" (its servers: s1, s2)` {
		t.Errorf("unknown server: %v", err)
	}
	s := f.step(t, TypeHAProxyReady, "s1", map[string]cty.Value{"backend": cty.StringVal("web")})
	if _, err := s.Do(t.Context(), &env.Env); err == nil || !strings.Contains(err.Error(), `has no backend "web"`) {
		t.Errorf("unknown backend: %v", err)
	}
}

// A socket that accepts but never answers must not hang a step.
func TestHAProxyAPIBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = haproxyAPI{addr: ln.Addr().String()}.command(ctx, "show stat")
	if err == nil {
		t.Fatal("a silent socket answered")
	}
}

func TestParseShowStat(t *testing.T) {
	out := "# pxname,svname,qcur,qmax,scur,smax,status,\n" +
		"fe,FRONTEND,,,3,5,OPEN,\n" +
		"api,s1,0,0,2,4,UP,\n" +
		"api,s2,1,0,0,1,DRAIN,\n" +
		"api,BACKEND,0,0,2,4,UP,\n\n"
	rows, err := parseShowStat(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []haproxyServer{
		{Backend: "fe", Name: "FRONTEND", Status: "OPEN", Sessions: 3},
		{Backend: "api", Name: "s1", Status: "UP", Sessions: 2},
		{Backend: "api", Name: "s2", Status: "DRAIN", Queued: 1},
		{Backend: "api", Name: "BACKEND", Status: "UP", Sessions: 2},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows\n got %v\nwant %v", rows, want)
	}
	for _, bad := range []string{"", "Permission denied.\n", "# pxname\n"} {
		if _, err := parseShowStat(bad); err == nil {
			t.Errorf("parseShowStat(%q) accepted it", bad)
		}
	}
}

func TestHAProxyNetwork(t *testing.T) {
	for addr, want := range map[string]string{
		"/run/haproxy/admin.sock":      "unix /run/haproxy/admin.sock",
		"unix@/run/haproxy/admin.sock": "unix /run/haproxy/admin.sock",
		"127.0.0.1:9999":               "tcp 127.0.0.1:9999",
		"ipv4@127.0.0.1:9999":          "tcp 127.0.0.1:9999",
		"[::1]:9999":                   "tcp [::1]:9999",
		"admin.sock":                   "error",
		"unix@admin.sock":              "error",
		"127.0.0.1:0":                  "error",
		"127.0.0.1":                    "error",
		":9999":                        "error",
	} {
		n, a, err := haproxyNetwork(addr)
		got := n + " " + a
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("haproxyNetwork(%q) = %q, want %q", addr, got, want)
		}
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

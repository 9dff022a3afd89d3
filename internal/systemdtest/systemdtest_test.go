package systemdtest

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartRunsTestsvc checks the whole harness: a manager starts, a unit
// written with HTTPServiceUnit starts under it and serves, and its output
// reaches out.log.
func TestStartRunsTestsvc(t *testing.T) {
	m := Start(t)
	t.Logf("manager running after %s", m.StartDuration)
	bin := m.Testsvc(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("v7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	m.WriteUnit(t, "harness-http.service", HTTPServiceUnit("harness-http", bin, port, dir, UnitOptions{Reload: true}))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := m.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := make(chan string, 1)
	if _, err := conn.StartUnitContext(ctx, "harness-http.service", "replace", ch); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			t.Fatalf("start job: %s", res)
		}
	case <-ctx.Done():
		t.Fatal("no job result")
	}

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	version := getEventually(t, ctx, base+"/version")
	if version != "v7" {
		t.Errorf("/version = %q, want v7", version)
	}
	prop, err := conn.GetServicePropertyContext(ctx, "harness-http.service", "MainPID")
	if err != nil {
		t.Fatal(err)
	}
	if pid := getEventually(t, ctx, base+"/pid"); pid != strconv.FormatUint(uint64(prop.Value.Value().(uint32)), 10) {
		t.Errorf("/pid = %s, MainPID = %v", pid, prop.Value)
	}
	log, err := os.ReadFile(filepath.Join(dir, "out.log"))
	if err != nil || !strings.Contains(string(log), "listening on") {
		t.Errorf("out.log = %q, %v; want the listening line", log, err)
	}
	for _, kv := range m.Env() {
		if !strings.Contains(kv, "=") {
			t.Errorf("Env entry %q", kv)
		}
	}
}

func TestHTTPServiceUnit(t *testing.T) {
	tests := []struct {
		opts UnitOptions
		want []string
		not  []string
	}{
		{UnitOptions{}, []string{"Type=exec\n", "ExecStart=/b/testsvc -addr 127.0.0.1:8123 -dir /d\n", "StandardOutput=append:/d/out.log\n", "WorkingDirectory=/d\n"}, []string{"ExecReload"}},
		{UnitOptions{Reload: true, Type: "simple", Args: []string{"-fail-start"}, Extra: []string{"Restart=always"}},
			[]string{"Type=simple\n", "ExecReload=/bin/kill -HUP $MAINPID\n", "-dir /d -fail-start\n", "Restart=always\n"}, nil},
	}
	for _, tt := range tests {
		got := HTTPServiceUnit("x", "/b/testsvc", 8123, "/d", tt.opts)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("unit %q lacks %q", got, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("unit %q has %q", got, n)
			}
		}
	}
}

func getEventually(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: %v", url, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

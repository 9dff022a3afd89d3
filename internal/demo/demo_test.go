package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/testenv"
	"github.com/rollout-sh/rollout/plans"
)

// TestDemoPlan checks the plan `rollout demo` runs: it is the file in plans/
// (embedded), it compiles without a diagnostic, the platform it places
// stays inside the demo directory, and it holds the reference's examples.
func TestDemoPlan(t *testing.T) {
	onDisk, err := os.ReadFile("../../plans/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, plans.Demo) {
		t.Fatal("plans.Demo differs from plans/demo.hcl")
	}
	plan, diags := compilePlan("../../plans/demo.hcl", "/srv/demo", 50000)
	if plan == nil || len(diags) > 0 {
		t.Fatalf("demo plan does not compile cleanly: %s", diags.Error())
	}
	if len(plan.Services) != 12 {
		t.Errorf("%d services, want 12", len(plan.Services))
	}
	if plan.OnFailure != "continue" {
		t.Errorf("on_failure = %q, want continue (a broken API still lets the ML chain finish)", plan.OnFailure)
	}
	services, err := servicesOf(plan, "/srv/demo")
	if err != nil {
		t.Fatal(err)
	}
	ports := map[int]string{}
	for _, s := range services {
		if want := "/srv/demo/apps/" + s.Name + "/current"; s.Dir != want {
			t.Errorf("%s: working_dir %s, want %s", s.Name, s.Dir, want)
		}
		if want := "/srv/demo/release/" + s.Name; s.Release != want {
			t.Errorf("%s: release %s, want %s", s.Name, s.Release, want)
		}
		if s.Port <= 50000 || s.Port > 50012 {
			t.Errorf("%s: port %d outside port_base+1..port_base+12", s.Name, s.Port)
		}
		if other, dup := ports[s.Port]; dup {
			t.Errorf("%s and %s share port %d", s.Name, other, s.Port)
		}
		ports[s.Port] = s.Name
	}
	for _, s := range plan.Services {
		deploy := false
		for _, st := range s.Steps {
			// The release step needs no external program: the demo
			// runs on a machine without rsync.
			if st.Type == "release" {
				deploy = true
			}
		}
		if !deploy {
			t.Errorf("%s: no release step under --deploy: it would not move to v2", s.Name)
		}
	}

	// The reference's examples, as restart orders.
	byName := map[string]int{}
	for i, name := range plan.Order {
		byName[name] = i
	}
	chains := [][]string{
		{"sso.postgresql", "sso.api"},
		{"sso.redis", "sso.api"},
		{"sso.api", "merchant.api", "marketplace.api"},
		{"seo.redis", "seo.rag-retrieval", "seo.classifier"},
	}
	for _, chain := range chains {
		for i := 1; i < len(chain); i++ {
			a, aok := byName[chain[i-1]]
			b, bok := byName[chain[i]]
			if !aok || !bok || a >= b {
				t.Errorf("order %v does not restart %s before %s", plan.Order, chain[i-1], chain[i])
			}
		}
	}
	for _, s := range plan.Services {
		if s.Name == "marketplace.api" && !(slices.Contains(s.DependsOn, "sso.api") && slices.Contains(s.DependsOn, "merchant.api")) {
			t.Errorf("marketplace.api depends_on %v, want sso.api and merchant.api (reference example 2)", s.DependsOn)
		}
	}
}

// TestServicesOfRejects: cleanup removes only rollout-demo-* units, and
// the demo learns ports from health URLs, so a plan breaking either is
// refused before anything is created.
func TestServicesOfRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, service, want string
	}{
		{"foreign unit", `unit = "nginx.service"
  health "http" { url = "http://127.0.0.1:1/health" }`, "does not start with rollout-demo-"},
		{"no health check", `unit = "rollout-demo-a.service"`, "no http health check"},
		{"health URL without port", `unit = "rollout-demo-a.service"
  health "http" { url = "http://127.0.0.1/health" }`, "has no port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".hcl")
			src := "variable \"dir\" {}\nvariable \"port_base\" {}\n" +
				"pipeline \"default\" {\n  step \"restart\" \"restart\" {}\n}\n" +
				"service \"a\" {\n  " + tt.service + "\n}\n"
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			plan, diags := compilePlan(path, dir, 50000)
			if plan == nil {
				t.Fatalf("test plan does not compile: %s", diags.Error())
			}
			_, err := servicesOf(plan, dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestSetupUnknownBreak: a --break that names no demo service is a
// UsageError listing the services, found before any manager is touched,
// and Cleanup then removes the demo directory and reports no units.
func TestSetupUnknownBreak(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var progress bytes.Buffer
	p := &Platform{Break: "sso.apii", Progress: &progress, Getenv: func(string) string { return "" }}
	err := p.Setup(context.Background())
	var usage *UsageError
	if !errors.As(err, &usage) {
		t.Fatalf("Setup: %v (%T), want a *UsageError", err, err)
	}
	if !strings.Contains(err.Error(), "choose one of: sso.postgresql,") {
		t.Errorf("error %q does not list the services", err)
	}
	if p.Manager != nil || progress.Len() > 0 {
		t.Errorf("manager %+v, progress %q: want neither before the usage error", p.Manager, progress.String())
	}
	if p.Dir == "" {
		t.Fatal("Setup recorded no demo directory for Cleanup")
	}
	done, problems := p.Cleanup()
	if done != "" || len(problems) > 0 {
		t.Errorf("Cleanup = %q, %v; want nothing to report", done, problems)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("left %d entries in TMPDIR", len(entries))
	}
}

// TestCleanupNothing: a platform that never set up has nothing to clean.
func TestCleanupNothing(t *testing.T) {
	done, problems := (&Platform{}).Cleanup()
	if done != "" || problems != nil {
		t.Errorf("Cleanup = %q, %v; want nothing", done, problems)
	}
}

func TestOutcome(t *testing.T) {
	ev := func(run, event, service, cause string) executor.Event {
		return executor.Event{RunID: run, Event: event, Service: service, Cause: cause}
	}
	tests := []struct {
		name   string
		events []executor.Event
		want   map[string]string
	}{
		{"no log", nil, map[string]string{}},
		{"success", []executor.Event{
			ev("r1", "RUN_START", "", ""),
			ev("r1", "SERVICE_RESTART_SUCCESS", "a", ""),
		}, map[string]string{"a": "restarted on v2"}},
		{"rolled back, whichever event comes first", []executor.Event{
			ev("r1", "RUN_START", "", ""),
			ev("r1", "ROLLBACK_SUCCESS", "a", ""),
			ev("r1", "SERVICE_RESTART_FAILED", "a", ""),
			ev("r1", "SERVICE_RESTART_FAILED", "b", ""),
			ev("r1", "ROLLBACK_SUCCESS", "b", ""),
			ev("r1", "SERVICE_RESTART_FAILED", "c", ""),
			ev("r1", "SERVICE_RESTART_FAILED", "d", ""),
			ev("r1", "ROLLBACK_FAILED", "d", ""),
		}, map[string]string{
			"a": "failed, rolled back to v1",
			"b": "failed, rolled back to v1",
			"c": "failed",
			"d": "failed, ROLLBACK FAILED",
		}},
		{"skipped", []executor.Event{
			ev("r1", "RUN_START", "", ""),
			ev("r1", "SERVICE_SKIPPED", "b", "a"),
			ev("r1", "SERVICE_SKIPPED", "c", ""),
		}, map[string]string{"b": "skipped: a failed", "c": "skipped"}},
		{"only the last run", []executor.Event{
			ev("r1", "RUN_START", "", ""),
			ev("r1", "SERVICE_RESTART_SUCCESS", "a", ""),
			ev("r1", "SERVICE_RESTART_SUCCESS", "b", ""),
			ev("r2", "RUN_START", "", ""),
			ev("r2", "SERVICE_SKIPPED", "b", "x"),
		}, map[string]string{"b": "skipped: x failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			if tt.events != nil {
				var buf bytes.Buffer
				enc := json.NewEncoder(&buf)
				for _, e := range tt.events {
					if err := enc.Encode(e); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := Outcome(path)
			if len(got) != len(tt.want) {
				t.Errorf("Outcome = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("Outcome[%s] = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name                    string
		versionCode, healthCode int
		wantVersion, wantHealth string
	}{
		{"healthy", http.StatusOK, http.StatusOK, "v2", "ok"},
		{"unhealthy", http.StatusOK, http.StatusServiceUnavailable, "v2", "503"},
		{"no version", http.StatusNotFound, http.StatusOK, "?", "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/version":
					w.WriteHeader(tt.versionCode)
					w.Write([]byte("v2\n"))
				case "/health":
					w.WriteHeader(tt.healthCode)
				}
			}))
			defer srv.Close()
			version, health := Probe(context.Background(), &Service{Port: portOf(t, srv.Listener.Addr())})
			if version != tt.wantVersion || health != tt.wantHealth {
				t.Errorf("Probe = %q, %q; want %q, %q", version, health, tt.wantVersion, tt.wantHealth)
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := portOf(t, ln.Addr())
		ln.Close()
		if version, health := Probe(context.Background(), &Service{Port: port}); version != "?" || health != "down" {
			t.Errorf("Probe of a closed port = %q, %q; want ?, down", version, health)
		}
	})
}

func portOf(t *testing.T, addr net.Addr) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUnitText: the unit runs the copied binary's demo-service command,
// with paths quoted so that a TMPDIR with spaces still works.
func TestUnitText(t *testing.T) {
	s := &Service{Name: "sso.api", Port: 41001, Dir: "/tmp/my demo/apps/sso.api/current", Log: "/tmp/my demo/logs/sso.api.log"}
	got := unitText(s, "/tmp/my demo/bin/rollout")
	for _, want := range []string{
		"Description=rollout demo service sso.api\n",
		"Type=exec\n",
		`ExecStart="/tmp/my demo/bin/rollout" demo-service -addr 127.0.0.1:41001 -dir "/tmp/my demo/apps/sso.api/current"` + "\n",
		"WorkingDirectory=/tmp/my demo/apps/sso.api/current\n",
		"StandardOutput=append:/tmp/my demo/logs/sso.api.log\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("unit lacks %q:\n%s", want, got)
		}
	}
}

func TestUserUnitDir(t *testing.T) {
	home := testenv.NeedHome(t)
	tests := []struct{ config, want string }{
		{"/etc/xdg-test", "/etc/xdg-test/systemd/user"},
		{"", filepath.Join(home, ".config", "systemd", "user")},
		{"relative/ignored", filepath.Join(home, ".config", "systemd", "user")},
	}
	for _, tt := range tests {
		got, err := UserUnitDir(func(k string) string {
			if k == "XDG_CONFIG_HOME" {
				return tt.config
			}
			return ""
		})
		if err != nil || got != tt.want {
			t.Errorf("XDG_CONFIG_HOME=%q: %q, %v; want %q", tt.config, got, err, tt.want)
		}
	}
}

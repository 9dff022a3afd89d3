package steps

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

func TestCanaryChecks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			fmt.Fprint(w, `{"errors": {"rate": 0.5}, "checks": [{"value": "7"}], "name": "x"}`)
		case "/down":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "/text":
			fmt.Fprint(w, "ok")
		}
	}))
	defer srv.Close()
	f := func(v float64) *float64 { return &v }
	inst := &planner.Service{Name: "api:1", Unit: "api@1.service", Health: &planner.Health{Kind: "http", URL: srv.URL + "/text"}}
	tests := []struct {
		name  string
		check planner.Check
		want  string // "" passes; else a part of the error
	}{
		{"status", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/text"}, ""},
		{"bad status", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/down"}, "503 Service Unavailable, want a 2xx status"},
		{"expected status", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/down", ExpectStatus: 503}, ""},
		{"above max", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/metrics", JSONPath: "errors.rate", Max: f(0.01)}, "errors.rate is 0.5, above the maximum 0.01"},
		{"within", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/metrics", JSONPath: "$.errors.rate", Max: f(1), Min: f(0.1)}, ""},
		{"below min", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/metrics", JSONPath: "checks[0].value", Min: f(10)}, "is 7, below the minimum 10"},
		{"no key", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/metrics", JSONPath: "errors.count", Max: f(1)}, `no key "errors.count"`},
		{"not a number", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/metrics", JSONPath: "name", Max: f(1)}, "is not a number"},
		{"not JSON", planner.Check{Kind: planner.CheckHTTP, URL: srv.URL + "/text", JSONPath: "a", Max: f(1)}, "not JSON"},
		{"exec passes", planner.Check{Kind: planner.CheckExec, Command: []string{"true"}}, ""},
		{"exec fails", planner.Check{Kind: planner.CheckExec, Command: []string{"false"}}, "exit status 1"},
		{"health", planner.Check{Kind: planner.CheckHealth, Instance: "api:1"}, ""},
	}
	build := NewCheckBuilder(Deps{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := build(inst, &tt.check)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = c.Check(ctx)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("failed: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
	if _, err := build(inst, &planner.Check{Kind: planner.CheckHTTP}); err == nil {
		t.Error("an http check without a url was built")
	}
}

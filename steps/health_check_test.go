package steps

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/planner"
)

func TestHealthCheckStep(t *testing.T) {
	errUnavailable := errors.New("GET http://localhost:3001/health: 503 Service Unavailable")
	tests := []struct {
		name     string
		args     map[string]cty.Value
		attempts int   // attempts the check reports
		result   error // what the check returns
		want     planner.Health
		wantErr  string
	}{
		{
			name:     "service health as is",
			attempts: 1,
			want:     planner.Health{Kind: "http", URL: "http://localhost:3001/health", Timeout: 30 * time.Second, Retries: 3, Interval: time.Second},
		},
		{
			name: "overrides",
			args: map[string]cty.Value{"timeout": cty.StringVal("5s"), "retries": cty.NumberIntVal(7), "interval": cty.StringVal("250ms")},
			want: planner.Health{Kind: "http", URL: "http://localhost:3001/health", Timeout: 5 * time.Second, Retries: 7, Interval: 250 * time.Millisecond},
		},
		{
			name:     "failure names the check, attempts and last error",
			attempts: 3,
			result:   errUnavailable,
			want:     planner.Health{Kind: "http", URL: "http://localhost:3001/health", Timeout: 30 * time.Second, Retries: 3, Interval: time.Second},
			wantErr:  `health check "precheck" failed after 3 attempts: GET http://localhost:3001/health: 503 Service Unavailable`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := testService()
			svc.Health = &planner.Health{Kind: "http", URL: "http://localhost:3001/health", Timeout: 30 * time.Second, Retries: 3, Interval: time.Second}
			var got planner.Health
			var gotUnit string
			var reported []int
			b := newScripted().builder()
			b.checkHealth = func(ctx context.Context, h *planner.Health, unit string, sd Backend, attempt func(int)) error {
				got, gotUnit = *h, unit
				for i := 1; i <= tt.attempts; i++ {
					attempt(i)
				}
				return tt.result
			}
			env := newTestEnv(svc)
			env.Attempt = func(n int) { reported = append(reported, n) }
			undo, err := mustBuild(t, b, svc, &planner.Step{Name: "precheck", Type: TypeHealthCheck, Args: tt.args}).Do(context.Background(), &env.Env)
			if undo != nil {
				t.Errorf("health_check returned an undo")
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Do: %v", err)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Do error = %v, want %q", err, tt.wantErr)
				}
				if !errors.Is(err, tt.result) {
					t.Errorf("error does not wrap the check's error")
				}
			}
			if got.Kind != tt.want.Kind || got.URL != tt.want.URL || got.Timeout != tt.want.Timeout || got.Retries != tt.want.Retries || got.Interval != tt.want.Interval {
				t.Errorf("checked %+v, want %+v", got, tt.want)
			}
			if gotUnit != "app.service" {
				t.Errorf("unit = %q", gotUnit)
			}
			if len(reported) != tt.attempts {
				t.Errorf("attempts reported to env: %v, want %d", reported, tt.attempts)
			}
			// The override never leaks into the plan's service.
			if svc.Health.Retries != 3 || svc.Health.Timeout != 30*time.Second {
				t.Errorf("service health changed: %+v", svc.Health)
			}
		})
	}
}

func TestHealthErrorWording(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		attempts, retries int
		want              string
	}{
		{1, 3, `health check "x" failed after 1 attempt: boom`},
		{0, 3, `health check "x" failed after 3 attempts: boom`},
		{2, 3, `health check "x" failed after 2 attempts: boom`},
		{0, 3, `health check "x" failed after 5 attempts: boom`},
	}
	for i, tt := range tests {
		err := base
		if i == len(tests)-1 {
			// CheckHealth's own error knows the count.
			err = &HealthError{Kind: "http", Attempts: 5, Err: base}
		}
		got := healthError("x", tt.attempts, tt.retries, err)
		if !errors.Is(got, base) {
			t.Errorf("healthError does not wrap %v", base)
		}
		if got := got.Error(); got != tt.want {
			t.Errorf("healthError(%d, %d) = %q, want %q", tt.attempts, tt.retries, got, tt.want)
		}
	}
}

func TestHealthCheckStepWithCheckHealth(t *testing.T) {
	// Through NewBuilder, so the real CheckHealth makes real requests.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	svc := testService()
	svc.Health = &planner.Health{Kind: "http", URL: srv.URL + "/health", Timeout: time.Second, Retries: 3, Interval: time.Second}
	build := NewBuilder(Deps{Systemd: systemdfake.New()})
	step, err := build(svc, &planner.Step{Name: "precheck", Type: TypeHealthCheck, Args: map[string]cty.Value{
		"timeout": cty.StringVal("50ms"), "retries": cty.NumberIntVal(2), "interval": cty.StringVal("10ms"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var attempts []int
	env := newTestEnv(svc)
	env.Attempt = func(n int) { attempts = append(attempts, n) }
	_, err = step.Do(context.Background(), &env.Env)
	want := `health check "precheck" failed after 2 attempts: GET ` + srv.URL + `/health: 503 Service Unavailable`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Do error = %v, want it to start with %q", err, want)
	}
	var he *HealthError
	if !errors.As(err, &he) {
		t.Errorf("error does not wrap *HealthError")
	}
	if len(attempts) != 2 || attempts[0] != 1 || attempts[1] != 2 {
		t.Errorf("attempts = %v, want [1 2]", attempts)
	}
}

package steps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/planner"
)

// statusServer answers /health with the statuses in order, then the last
// one forever; "hang" waits until the client gives up.
func statusServer(t *testing.T, script ...string) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		step := script[min(i, len(script)-1)]
		switch step {
		case "hang":
			<-r.Context().Done()
		case "200":
			w.Write([]byte("ok"))
		case "204":
			w.WriteHeader(http.StatusNoContent)
		case "503":
			http.Error(w, "warming up", http.StatusServiceUnavailable)
		default:
			t.Errorf("bad script step %q", step)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// closedAddress is a local address nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestCheckHealth(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	refused := closedAddress(t)

	fast := func(h planner.Health) *planner.Health {
		if h.Timeout == 0 {
			h.Timeout = 200 * time.Millisecond
		}
		if h.Retries == 0 {
			h.Retries = 3
		}
		if h.Interval == 0 {
			h.Interval = 20 * time.Millisecond
		}
		return &h
	}
	tests := []struct {
		name         string
		health       func(t *testing.T) *planner.Health
		wantAttempts int
		wantErr      string // "" = healthy
	}{
		{"http healthy", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: statusServer(t, "200").URL})
		}, 1, ""},
		{"http any 2xx", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: statusServer(t, "204").URL})
		}, 1, ""},
		{"http expect_status mismatch", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: statusServer(t, "200").URL, ExpectStatus: 204, Retries: 2})
		}, 2, "200 OK, want status 204"},
		{"http 503 then healthy within one attempt", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: statusServer(t, "503", "503", "200").URL})
		}, 1, ""},
		{"http 503 then healthy on a later attempt", func(t *testing.T) *planner.Health {
			// Hanging requests use up attempts 1 and 2.
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: statusServer(t, "hang", "hang", "200").URL, Timeout: 100 * time.Millisecond})
		}, 3, ""},
		{"http always 503", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: statusServer(t, "503").URL, Retries: 2})
		}, 2, `503 Service Unavailable, want a 2xx status; body "warming up"`},
		{"http hangs", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: statusServer(t, "hang").URL, Timeout: 100 * time.Millisecond, Retries: 2})
		}, 2, "no response before the attempt's timeout"},
		{"http connection refused", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: "http://" + refused + "/health", Retries: 1})
		}, 1, "connection refused"},
		{"http redirect is not followed", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: redirectServer(t).URL + "/health", Retries: 1})
		}, 1, `302 Found, a redirect to "/login" (not followed), want a 2xx status`},
		{"http expect_status 302 passes", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthHTTP, URL: redirectServer(t).URL + "/health", ExpectStatus: 302, Retries: 1})
		}, 1, ""},
		{"tcp open", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthTCP, Address: ln.Addr().String()})
		}, 1, ""},
		{"tcp refused", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthTCP, Address: refused, Retries: 2})
		}, 2, "connect " + refused},
		{"exec true", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthExec, Command: []string{"true"}})
		}, 1, ""},
		{"exec false", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthExec, Command: []string{"false"}, Retries: 2})
		}, 2, "false: exit status 1"},
		{"exec output in the error", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthExec, Command: []string{"sh", "-c", "echo db down >&2; exit 3"}, Retries: 1})
		}, 1, "exit status 3; output: db down"},
		{"exec argv is not a shell line", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthExec, Command: []string{"true; false"}, Retries: 1})
		}, 1, "executable file not found"},
		{"exec timeout", func(t *testing.T) *planner.Health {
			return fast(planner.Health{Kind: dsl.HealthExec, Command: []string{"sleep", "10"}, Timeout: 100 * time.Millisecond, Retries: 1})
		}, 1, "killed at the attempt's timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.health(t)
			var attempts []int
			err := CheckHealth(context.Background(), h, "x.service", nil, func(n int) { attempts = append(attempts, n) })
			checkHealthResult(t, err, attempts, tt.wantAttempts, tt.wantErr)
		})
	}
}

func checkHealthResult(t *testing.T, err error, attempts []int, wantAttempts int, wantErr string) {
	t.Helper()
	if len(attempts) != wantAttempts {
		t.Errorf("attempts %v, want %d", attempts, wantAttempts)
	}
	for i, n := range attempts {
		if n != i+1 {
			t.Errorf("attempt numbers %v, want 1..%d", attempts, wantAttempts)
			break
		}
	}
	if wantErr == "" {
		if err != nil {
			t.Errorf("error = %v, want healthy", err)
		}
		return
	}
	var he *HealthError
	if !errors.As(err, &he) || he.Attempts != wantAttempts {
		t.Fatalf("error = %v, want a *HealthError with %d attempts", err, wantAttempts)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("error = %q, want it to contain %q", err, wantErr)
	}
}

func TestCheckHealthSystemd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		state        *UnitState // nil: unknown unit
		failStatus   error
		wantAttempts int
		wantErr      string
	}{
		{"running", &UnitState{ActiveState: "active", SubState: "running"}, nil, 1, ""},
		{"oneshot exited", &UnitState{ActiveState: "active", SubState: "exited"}, nil, 1, ""},
		{"failed", &UnitState{ActiveState: "failed", SubState: "failed"}, nil, 2, "is failed (failed), not active"},
		{"reloading", &UnitState{ActiveState: "active", SubState: "reload"}, nil, 2, "active but reload"},
		{"not found", nil, nil, 2, `load state "not-found"`},
		{"status error", &UnitState{ActiveState: "active", SubState: "running"}, errors.New("bus gone"), 2, "bus gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sd := systemdfake.New()
			if tt.state != nil {
				sd.SetUnit("db.service", *tt.state)
			}
			sd.Fail(systemdfake.StatusOp, "db.service", tt.failStatus)
			h := &planner.Health{Kind: dsl.HealthSystemd, Timeout: 50 * time.Millisecond, Retries: 2, Interval: 10 * time.Millisecond}
			var attempts []int
			err := CheckHealth(context.Background(), h, "db.service", sd, func(n int) { attempts = append(attempts, n) })
			checkHealthResult(t, err, attempts, tt.wantAttempts, tt.wantErr)
		})
	}
}

// TestCheckHealthSystemdBecomesActive: the poll inside one attempt sees a
// unit that turns active during the attempt.
func TestCheckHealthSystemdBecomesActive(t *testing.T) {
	t.Parallel()
	sd := systemdfake.New()
	sd.SetUnit("db.service", UnitState{ActiveState: "activating", SubState: "start"})
	time.AfterFunc(30*time.Millisecond, func() {
		sd.SetUnit("db.service", UnitState{ActiveState: "active", SubState: "running"})
	})
	h := &planner.Health{Kind: dsl.HealthSystemd, Timeout: 10 * time.Second, Retries: 1, Interval: 20 * time.Millisecond}
	if err := CheckHealth(context.Background(), h, "db.service", sd, nil); err != nil {
		t.Fatal(err)
	}
}

func TestCheckHealthInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		health *planner.Health
		sd     Backend
		want   string
	}{
		{"nil", nil, nil, "no health check"},
		{"unknown kind", &planner.Health{Kind: "smoke"}, nil, `unknown health check kind "smoke"`},
		{"http without url", &planner.Health{Kind: dsl.HealthHTTP}, nil, "without a url"},
		{"tcp without address", &planner.Health{Kind: dsl.HealthTCP}, nil, "without an address"},
		{"exec without command", &planner.Health{Kind: dsl.HealthExec}, nil, "without a command"},
		{"systemd without backend", &planner.Health{Kind: dsl.HealthSystemd}, nil, "without a systemd connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			err := CheckHealth(context.Background(), tt.health, "x.service", tt.sd, func(int) { called = true })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
			if called {
				t.Error("an invalid check made an attempt")
			}
		})
	}
}

// TestCheckHealthContextCancelled: the caller's ctx ends the check
// between attempts, and the error says so.
func TestCheckHealthContextCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	// Attempt 1 ends after 5 ms; the cancel comes a second later, in the
	// hour-long pause before attempt 2, with a margin for a loaded machine.
	h := &planner.Health{Kind: dsl.HealthTCP, Address: closedAddress(t), Timeout: 5 * time.Millisecond, Retries: 1000, Interval: time.Hour}
	err := CheckHealth(ctx, h, "", nil, func(n int) {
		if n == 1 {
			time.AfterFunc(time.Second, cancel)
		}
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after attempt 1") {
		t.Errorf("error = %v, want context.Canceled after attempt 1", err)
	}
}

// redirectServer answers /health with 302 to /login, and /login with 200:
// the hostile test's service whose health page redirects to a login page.
func redirectServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login", http.StatusFound)
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "please log in")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

package steps

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/planner"
)

// scriptedBackend wraps the fake systemd to record one ordered log of jobs,
// daemon-reloads and health checks (Status calls are left out, they are
// noise), and to let a test change what a call does.
type scriptedBackend struct {
	*systemdfake.Systemd
	mu  sync.Mutex
	log []string
	// statuses counts Status calls; onStatus may edit the state returned
	// by call n (1-based) and the fake's unit from then on.
	statuses int
	onStatus func(n int, unit string, f *systemdfake.Systemd)
	// noopJobs makes these jobs succeed without changing the unit, as a
	// job that systemd reports "done" but that did nothing.
	noopJobs map[Op]bool
	// health is the scripted result of each health check, in order; past
	// the end, checks pass.
	health []error
	// read is every field asked of StatusOf.
	read Field
}

func newScripted() *scriptedBackend {
	return &scriptedBackend{Systemd: systemdfake.New(), noopJobs: map[Op]bool{}}
}

func (s *scriptedBackend) note(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, fmt.Sprintf(format, a...))
}

func (s *scriptedBackend) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func (s *scriptedBackend) DaemonReload(ctx context.Context) error {
	s.note("daemon-reload")
	return s.Systemd.DaemonReload(ctx)
}

func (s *scriptedBackend) Do(ctx context.Context, op Op, unit string) error {
	s.note("%s %s", op, unit)
	if s.noopJobs[op] {
		return nil
	}
	return s.Systemd.Do(ctx, op, unit)
}

func (s *scriptedBackend) Status(ctx context.Context, unit string) (UnitState, error) {
	s.mu.Lock()
	s.statuses++
	n := s.statuses
	hook := s.onStatus
	s.mu.Unlock()
	if hook != nil {
		hook(n, unit, s.Systemd)
	}
	return s.Systemd.Status(ctx, unit)
}

// StatusOf keeps the scripted Status (the embedded fake's StatusOf would
// bypass it) and the fields' masking.
func (s *scriptedBackend) StatusOf(ctx context.Context, unit string, fields Field) (UnitState, error) {
	s.mu.Lock()
	s.read |= fields | FieldLoadState
	s.mu.Unlock()
	st, err := s.Status(ctx, unit)
	return st.Only(fields | FieldLoadState), err
}

// checkHealth is a healthFunc that logs the check and returns the next
// scripted result, reporting one attempt.
func (s *scriptedBackend) checkHealth(ctx context.Context, h *planner.Health, unit string, sd Backend, attempt func(int)) error {
	s.note("health %s", unit)
	attempt(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.health) == 0 {
		return nil
	}
	err := s.health[0]
	s.health = s.health[1:]
	return err
}

func (s *scriptedBackend) builder() *builder {
	return &builder{sd: s, checkHealth: s.checkHealth, pollInterval: time.Millisecond}
}

// testEnv is an Env whose log lines are collected.
type testEnv struct {
	executor.Env
	mu    sync.Mutex
	lines []string
}

func newTestEnv(svc *planner.Service) *testEnv {
	e := &testEnv{}
	e.Env = executor.Env{
		RunID:   "run1",
		Service: svc,
		Logf: func(format string, a ...any) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.lines = append(e.lines, fmt.Sprintf(format, a...))
		},
		Attempt: func(int) {},
	}
	return e
}

func (e *testEnv) output() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.lines, "\n")
}

// testService is a service on unit "app.service" with the systemd check.
func testService() *planner.Service {
	return &planner.Service{
		Name:   "app",
		Unit:   "app.service",
		Health: &planner.Health{Kind: "systemd", Timeout: 1, Retries: 3, Interval: 1},
	}
}

func mustBuild(t *testing.T, b *builder, svc *planner.Service, step *planner.Step) executor.Step {
	t.Helper()
	s, err := b.build(svc, step)
	if err != nil {
		t.Fatalf("build %s: %v", step.Type, err)
	}
	return s
}

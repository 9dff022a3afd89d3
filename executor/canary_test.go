package executor

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// canaryPlan is api:1 (the canary) then api:2 and api:3 one at a time, as
// the planner makes them for instances = 3 with a canary of 1.
func canaryPlan(auto bool) *planner.Plan {
	// By hand: makePlan reads "a: b" as a dependency.
	p := &planner.Plan{Name: "test"}
	for k, name := range []string{"api:1", "api:2", "api:3"} {
		svc := &planner.Service{
			Name: name, Service: "api", Instance: name[4:], InstanceIndex: k,
			Unit:   "api@" + name[4:] + ".service",
			Health: &planner.Health{Kind: "http", URL: "http://localhost:3001/health"},
			Steps:  []*planner.Step{{Name: "restart", Type: "restart"}},
		}
		p.Services = append(p.Services, svc)
		p.Order = append(p.Order, name)
	}
	p.Services[1].After = []string{"api:1"}
	p.Services[2].After = []string{"api:1"}
	p.Batches = []planner.Batch{{Services: []string{"api"}, MaxUnavailable: 1}}
	p.Canaries = []*planner.Canary{{
		Service: "api", Canaries: []string{"api:1"}, Rest: []string{"api:2", "api:3"},
		Observe: 60 * time.Millisecond, Interval: 10 * time.Millisecond, AutoPromote: auto, PromoteTimeout: time.Minute,
		Checks: []*planner.Check{{Kind: planner.CheckHTTP, URL: "http://localhost:3001/metrics", Timeout: time.Second}},
	}}
	return p
}

type fakeCheck func(ctx context.Context) error

func (f fakeCheck) Check(ctx context.Context) error { return f(ctx) }

// checks builds every check as f, counting the rounds.
func checks(rounds *atomic.Int64, f func(round int64) error) CheckBuilder {
	return func(inst *planner.Service, c *planner.Check) (Check, error) {
		return fakeCheck(func(context.Context) error { return f(rounds.Add(1)) }), nil
	}
}

// restartUndos scripts every instance's restart to push a committer that
// records its undo and its commit.
func restartUndos(rec *recorder) map[string]doFunc {
	script := map[string]doFunc{}
	for _, n := range []string{"api:1", "api:2", "api:3"} {
		script[n+"/restart"] = returning(&fakeCommitter{fakeUndo: fakeUndo{name: n, rec: rec}}, nil)
	}
	return script
}

func TestCanaryPromotedAutomatically(t *testing.T) {
	rec := &recorder{}
	var rounds atomic.Int64
	res, log := run(t, context.Background(), canaryPlan(true), Options{
		Build:      builder(rec, restartUndos(rec)),
		BuildCheck: checks(&rounds, func(int64) error { return nil }),
	})
	if res.ExitCode() != 0 || len(res.Succeeded) != 3 {
		t.Fatalf("result %+v, want all 3 succeeded", res)
	}
	lines := log.lines()
	promoted := slices.Index(lines, "CANARY_PROMOTED api")
	if slices.Index(lines, "CANARY_START api") < 0 || promoted < 0 {
		t.Fatalf("no CANARY_START and CANARY_PROMOTED in %q", lines)
	}
	// The rest start only after the promotion.
	if i := slices.Index(lines, "SERVICE_RESTART_START api:2"); i < promoted {
		t.Errorf("api:2 started at %d, before the promotion at %d: %q", i, promoted, lines)
	}
	if rounds.Load() < 2 {
		t.Errorf("the check ran %d times, want a round per interval over the observation", rounds.Load())
	}
	// The canary's undo stack was kept until the promotion, then committed.
	got := rec.snapshot()
	if i, j := slices.Index(got, "commit api:1"), slices.Index(got, "do api:2/restart"); i < 0 || i > j {
		t.Errorf("api:1 committed at %d, api:2 restarted at %d: %q", i, j, got)
	}
}

func TestCanaryFailedAnalysisRollsBackTheCanaryOnly(t *testing.T) {
	rec := &recorder{}
	var rounds atomic.Int64
	res, log := run(t, context.Background(), canaryPlan(true), Options{
		Build: builder(rec, restartUndos(rec)),
		BuildCheck: checks(&rounds, func(round int64) error {
			if round >= 2 {
				return errors.New("error rate 0.5 above 0.01")
			}
			return nil
		}),
	})
	if res.ExitCode() != 1 {
		t.Errorf("exit %d, want 1", res.ExitCode())
	}
	if !slices.Equal(res.RolledBack, []string{"api:1"}) || !slices.Equal(res.Skipped, []string{"api:2", "api:3"}) {
		t.Errorf("rolled back %q, skipped %q; want api:1 and api:2, api:3", res.RolledBack, res.Skipped)
	}
	got := rec.snapshot()
	want := []string{"do api:1/restart", "undo api:1"}
	if !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q: the canary rolled back, never committed, the rest never touched", got, want)
	}
	failed := log.find(CanaryFailed, "api")
	if len(failed) != 1 || !strings.Contains(failed[0].Error, "error rate 0.5") {
		t.Errorf("CANARY_FAILED events %+v", failed)
	}
	if ev := log.find(ServiceRestartFailed, "api:1"); len(ev) != 1 || ev[0].Instance != "1" {
		t.Errorf("SERVICE_RESTART_FAILED of api:1: %+v", ev)
	}
}

func TestCanaryOwnFailureSkipsTheRest(t *testing.T) {
	rec := &recorder{}
	script := restartUndos(rec)
	script["api:1/restart"] = returning(&fakeUndo{name: "api:1", rec: rec}, errors.New("unit failed"))
	var rounds atomic.Int64
	res, log := run(t, context.Background(), canaryPlan(true), Options{
		Build:      builder(rec, script),
		BuildCheck: checks(&rounds, func(int64) error { return nil }),
		OnFailure:  "continue",
	})
	if res.ExitCode() != 1 || !slices.Equal(res.Skipped, []string{"api:2", "api:3"}) {
		t.Errorf("exit %d, skipped %q; want 1 and api:2, api:3", res.ExitCode(), res.Skipped)
	}
	if rounds.Load() != 0 {
		t.Errorf("a failed canary was observed %d times", rounds.Load())
	}
	if len(log.find(CanaryFailed, "api")) != 1 {
		t.Errorf("no CANARY_FAILED: %q", log.lines())
	}
}

func TestCanaryManualPromotion(t *testing.T) {
	dir := t.TempDir()
	rec := &recorder{}
	var rounds atomic.Int64
	log := &eventLog{}
	log.on = func(ev Event) {
		if ev.Event == CanaryWaiting {
			// From another goroutine, as `rollout promote` from another
			// shell: the file handshake.
			go func() {
				if err := Promote(dir, "test-run", Promotion{By: "alice"}); err != nil {
					t.Errorf("Promote: %v", err)
				}
			}()
		}
	}
	res, _ := run(t, context.Background(), canaryPlan(false), Options{
		Build:      builder(rec, restartUndos(rec)),
		BuildCheck: checks(&rounds, func(int64) error { return nil }),
		PromoteDir: dir,
		Observe:    log.observe,
	})
	if res.ExitCode() != 0 {
		t.Fatalf("exit %d: %+v", res.ExitCode(), res)
	}
	ev := log.find(CanaryPromoted, "api")
	if len(ev) != 1 || !strings.Contains(ev[0].Message, "promoted by alice") {
		t.Errorf("CANARY_PROMOTED %+v", ev)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("promotion files left behind: %q", left)
	}
	if err := Promote(dir, "test-run", Promotion{By: "bob"}); err == nil {
		t.Error("Promote of a run no longer waiting succeeded")
	}
}

func TestCanaryRejectedOrNotPromotedInTime(t *testing.T) {
	for _, tt := range []struct {
		name   string
		reject bool
		cause  string
	}{
		{"rejected", true, "rejected by bob"},
		{"timeout", false, "not promoted within"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			rec := &recorder{}
			var rounds atomic.Int64
			plan := canaryPlan(false)
			plan.Canaries[0].PromoteTimeout = 50 * time.Millisecond
			if tt.reject {
				plan.Canaries[0].PromoteTimeout = time.Minute
			}
			log := &eventLog{}
			log.on = func(ev Event) {
				if ev.Event == CanaryWaiting && tt.reject {
					go func() { _ = Promote(dir, "test-run", Promotion{By: "bob", Abort: true}) }()
				}
			}
			res, _ := run(t, context.Background(), plan, Options{
				Build:      builder(rec, restartUndos(rec)),
				BuildCheck: checks(&rounds, func(int64) error { return nil }),
				PromoteDir: dir,
				Observe:    log.observe,
				// The wait is polled: the real clock, so that the
				// promote_timeout is not counted in readings.
				Now: time.Now,
			})
			if res.ExitCode() != 1 || !slices.Equal(res.RolledBack, []string{"api:1"}) {
				t.Errorf("exit %d, rolled back %q", res.ExitCode(), res.RolledBack)
			}
			ev := log.find(CanaryFailed, "api")
			if len(ev) != 1 || !strings.Contains(ev[0].Error, tt.cause) {
				t.Errorf("CANARY_FAILED %+v, want %q", ev, tt.cause)
			}
		})
	}
}

func TestCanaryInterruptedBeforePromotion(t *testing.T) {
	rec := &recorder{}
	var rounds atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	plan := canaryPlan(true)
	plan.Canaries[0].Observe = time.Minute
	log := &eventLog{}
	log.on = func(ev Event) {
		if ev.Event == CanaryStart {
			cancel()
		}
	}
	res, _ := run(t, ctx, plan, Options{
		Build:      builder(rec, restartUndos(rec)),
		BuildCheck: checks(&rounds, func(int64) error { return nil }),
		Observe:    log.observe,
	})
	if res.ExitCode() != 130 || !slices.Equal(res.RolledBack, []string{"api:1"}) {
		t.Errorf("exit %d, rolled back %q; want 130 and the canary rolled back", res.ExitCode(), res.RolledBack)
	}
}

func TestSummarizeCanary(t *testing.T) {
	evs := []Event{
		{RunID: "r", Event: RunStart, Plan: "p"},
		{RunID: "r", Event: ServiceRestartSuccess, Service: "api:1", Instance: "1"},
		{RunID: "r", Event: CanaryStart, Service: "api"},
		{RunID: "r", Event: CanaryFailed, Service: "api", Error: "http …/metrics: errors.rate is 0.5"},
		{RunID: "r", Event: RollbackSuccess, Service: "api:1"},
		{RunID: "r", Event: ServiceRestartFailed, Service: "api:1"},
		{RunID: "r", Event: ServiceSkipped, Service: "api:2"},
		{RunID: "r", Event: RunFailed},
	}
	s := Summarize(evs)[0]
	if len(s.Restarted) != 0 || !slices.Equal(s.Failed, []string{"api:1"}) || !slices.Equal(s.RolledBack, []string{"api:1"}) {
		t.Errorf("restarted %q failed %q rolled back %q: a canary rolled back is failed, not restarted", s.Restarted, s.Failed, s.RolledBack)
	}
	if want := []string{"api FAILED: http …/metrics: errors.rate is 0.5"}; !slices.Equal(s.Canaries, want) {
		t.Errorf("canaries %q, want %q", s.Canaries, want)
	}
}

func TestCanaryFailureLimit(t *testing.T) {
	for _, tt := range []struct {
		name     string
		failing  int64 // rounds that fail, from the second on
		limit    int
		wantExit int
	}{
		{"a blip within the limit", 1, 1, 0},
		{"beyond the limit", 2, 1, 1},
		{"no limit", 1, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			var rounds atomic.Int64
			plan := canaryPlan(true)
			plan.Canaries[0].FailureLimit = tt.limit
			res, log := run(t, context.Background(), plan, Options{
				Build: builder(rec, restartUndos(rec)),
				BuildCheck: checks(&rounds, func(round int64) error {
					if round >= 2 && round < 2+tt.failing {
						return errors.New("503 Service Unavailable")
					}
					return nil
				}),
			})
			if res.ExitCode() != tt.wantExit {
				t.Errorf("exit %d, want %d: %q", res.ExitCode(), tt.wantExit, log.lines())
			}
		})
	}
}

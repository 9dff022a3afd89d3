package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// TestScheduleBreaksTiesByHistory: services the plan cannot tell apart
// (equal fixed waits, equal chain length) start longest-learned chain
// first; what the plan does tell apart keeps its order whatever the
// history says, and a service never seen counts as the median.
func TestScheduleBreaksTiesByHistory(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name  string
		specs []string
		took  map[string]time.Duration
		want  []string // the first wave, in start order
	}{
		{"no history: plan order", []string{"a", "b: a", "c", "d: c"}, nil, []string{"a", "c"}},
		{"the slower chain first", []string{"a", "b: a", "c", "d: c"},
			map[string]time.Duration{"a": ms(300), "b": ms(300), "c": ms(300), "d": ms(400)}, []string{"c", "a"}},
		{"a longer chain outranks a slower service", []string{"x", "a", "b: a"},
			map[string]time.Duration{"x": 10 * time.Second, "a": ms(10), "b": ms(10)}, []string{"a", "x"}},
		{"an unseen service counts as the median", []string{"a", "b: a", "c", "d: c", "e", "f: e"},
			map[string]time.Duration{"a": ms(100), "b": ms(100), "c": ms(300), "d": ms(300), "e": ms(200)}, []string{"c", "e", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSchedule(makePlan(specs(tt.specs...)...), 0, tt.took)
			if got := startAll(s); !slices.Equal(got, tt.want) {
				t.Errorf("started %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRestartDurations: the shortest of each service's last historyRuns
// successful restarts, from the log's tail; failures, torn lines and
// other events do not count, and a missing log is no history.
func TestRestartDurations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	var b strings.Builder
	line := func(event, svc string, ms int) {
		fmt.Fprintf(&b, `{"time":"2026-12-01T10:00:00Z","run_id":"r","event":%q,"service":%q,"duration_ms":%d}`+"\n", event, svc, ms)
	}
	// api: 7 runs; only the last 5 (500, 300, 200, 400, 250) count.
	for _, ms := range []int{90, 90, 500, 300, 200, 400, 250} {
		line("STEP_SUCCESS", "api", 1)
		line(ServiceRestartSuccess, "api", ms)
	}
	line(ServiceRestartFailed, "db", 50000)
	line(ServiceRestartSuccess, "db", 80)
	b.WriteString(`{"event":"SERVICE_RESTART_SUCCESS","service":"db","duration_` + "\n") // torn
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := readLearned(path).service
	want := map[string]time.Duration{"api": 200 * time.Millisecond, "db": 80 * time.Millisecond}
	if len(got) != len(want) || got["api"] != want["api"] || got["db"] != want["db"] {
		t.Errorf("learned restarts %v, want %v", got, want)
	}
	if got := readLearned(filepath.Join(dir, "missing.jsonl")).service; len(got) != 0 {
		t.Errorf("a missing log gave %v, want no history", got)
	}

	// Past historyTail bytes only the tail is read: an old run of a
	// service no longer restarted is not seen, and the line the tail
	// starts in the middle of is skipped, not misread.
	var big strings.Builder
	fmt.Fprintf(&big, `{"event":"SERVICE_RESTART_SUCCESS","service":"gone","duration_ms":1}`+"\n")
	filler := `{"event":"STEP_LOG","service":"x","message":"` + strings.Repeat("y", 1000) + `"}` + "\n"
	for big.Len() < historyTail+10*len(filler) {
		big.WriteString(filler)
	}
	big.WriteString(b.String())
	if err := os.WriteFile(path, []byte(big.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got = readLearned(path).service
	if _, ok := got["gone"]; ok || got["api"] != want["api"] {
		t.Errorf("from a long log: %v, want api 200ms and nothing of the head", got)
	}
}

// TestRunRanksByItsEventsLog: a run learns from the runs in its events
// log. Two chains the plan cannot tell apart start in plan order the
// first time; once the log says the second chain is the slower, it
// starts first, and each step is told how long it took before
// (Env.Expected). Seen failing with the log not read.
func TestRunRanksByItsEventsLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "events.jsonl")
	plan := makePlan(specs("a", "b: a", "c", "d: c")...)
	var expected time.Duration // what the last run's step of c expected
	first := func() []string {
		sink, err := OpenEventLog(log)
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		var started []string
		slow := map[string]bool{"c": true, "d": true}
		build := func(svc *planner.Service, st *planner.Step) (Step, error) {
			return fakeStep{key: svc.Name, do: func(ctx context.Context, env *Env) (Undo, error) {
				if svc.Name == "c" {
					expected = env.Expected
				}
				if slow[svc.Name] {
					time.Sleep(30 * time.Millisecond)
				}
				return nil, nil
			}}, nil
		}
		_, events := run(t, context.Background(), plan, Options{Build: build, EventsLog: log, Events: sink, Now: time.Now})
		for _, e := range events.find(ServiceRestartStart, "") {
			if e.Service == "a" || e.Service == "c" {
				started = append(started, e.Service)
			}
		}
		return started
	}
	if got := first(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("without history the chains started %v, want plan order [a c]", got)
	}
	if got := first(); !slices.Equal(got, []string{"c", "a"}) {
		t.Errorf("with the slower chain in the log they started %v, want [c a]", got)
	}
	// The step learned how long it took (its sleep, at least).
	if expected < 30*time.Millisecond {
		t.Errorf("c's step expected %v from the log, want its earlier duration (≥ 30ms)", expected)
	}
}

// TestDurationFieldsReadsWhatJSONReads: the key-by-key reading of a line
// rollout wrote gives what decoding it gives, for every kind of success
// event, and rejects the rest.
func TestDurationFieldsReadsWhatJSONReads(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	events := []Event{
		{Time: at, RunID: "r", Event: StepSuccess, Service: "api", Unit: "api.service", Step: "verify", DurationMS: 251},
		{Time: at, RunID: "r", Event: StepSuccess, Service: "api@app-1", Host: "app-1", Unit: "api.service", Step: "restart", DurationMS: 12, Message: "reloaded"},
		{Time: at, RunID: "r", Event: StepSuccess, Service: "w:2", Instance: "2", Unit: "w@2.service", Step: "stop", Phase: "rollback", DurationMS: 40},
		{Time: at, RunID: "r", Event: ServiceRestartSuccess, Service: "db", Unit: "db.service", DurationMS: 1500},
		{Time: at, RunID: "r", Event: StepSuccess, Service: "odd", Step: "x", Message: `a "quoted" word`, DurationMS: 7},
		{Time: at, RunID: "r", Event: StepStart, Service: "api", Step: "verify"},
		{Time: at, RunID: "r", Event: ServiceRestartFailed, Service: "api", DurationMS: 9},
	}
	for _, ev := range events {
		line, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := durationFields(line)
		relevant := ev.Event == StepSuccess || ev.Event == ServiceRestartSuccess
		if ok != relevant {
			t.Errorf("%s: ok = %v, want %v", line, ok, relevant)
			continue
		}
		var want durationEvent
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatal(err)
		}
		if relevant && got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", line, got, want)
		}
		if _, ok := durationFields(line[:len(line)-3]); ok {
			t.Errorf("%s cut short was read", line)
		}
	}
}

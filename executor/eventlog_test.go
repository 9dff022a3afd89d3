package executor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestEventLogAppendsAcrossRuns(t *testing.T) {
	old := syscall.Umask(0o022) // the mode check needs a known umask
	defer syscall.Umask(old)

	path := filepath.Join(t.TempDir(), "nested", "dir", "events.jsonl")
	plan := makePlan(specs("a", "b: a")...)
	var perRun []int
	for _, runID := range []string{"run-1", "run-2"} {
		sink, err := OpenEventLog(path)
		if err != nil {
			t.Fatal(err)
		}
		log := &eventLog{}
		if _, err := Run(context.Background(), plan, Options{Build: builder(nil, nil), RunID: runID, Events: sink, Observe: log.observe, Now: newFakeClock().Now}); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		perRun = append(perRun, len(log.contract()))
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o640 {
		t.Errorf("events log mode = %o, want 640", mode)
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o750 {
		t.Errorf("events log directory mode = %o, want 750", dir.Mode().Perm())
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != perRun[0]+perRun[1] {
		t.Fatalf("%d lines, want %d", len(lines), perRun[0]+perRun[1])
	}
	for i, line := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
		wantRun := "run-1"
		if i >= perRun[0] {
			wantRun = "run-2"
		}
		if ev["run_id"] != wantRun {
			t.Errorf("line %d: run_id %v, want %s", i+1, ev["run_id"], wantRun)
		}
		for _, key := range []string{"time", "event", "duration_ms"} {
			if _, ok := ev[key]; !ok {
				t.Errorf("line %d lacks %q: %s", i+1, key, line)
			}
		}
	}
	if !strings.Contains(lines[0], `"event":"RUN_START"`) || !strings.Contains(lines[perRun[0]], `"event":"RUN_START"`) {
		t.Errorf("each run does not begin with RUN_START")
	}
}

func TestFileSinkLinesNeverInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	sink, err := OpenEventLog(path)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 8192) // larger than a pipe buffer
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := sink.Write(Event{Event: StepLog, Service: string(rune('a' + w)), Message: long}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	sink.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("line %d is not JSON", n)
		}
	}
	if n != 400 {
		t.Errorf("%d lines, want 400", n)
	}
	if err := sink.Write(Event{}); err == nil {
		t.Errorf("Write after Close succeeded")
	}
}

func TestLostEventsFailRunButObserverSeesThem(t *testing.T) {
	plan := makePlan(specs("a", "b")...)
	sink := &memSink{failAfter: 3}
	log := &eventLog{}
	res, err := Run(context.Background(), plan, Options{Build: builder(nil, nil), Events: sink, Observe: log.observe, Parallel: 1})
	if err == nil || !strings.Contains(err.Error(), "events were lost") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err = %v, want one saying events were lost", err)
	}
	if len(res.Succeeded) != 2 {
		t.Errorf("the run stopped on a lost event: %+v", res)
	}
	if got, want := len(log.contract()), 2*4+2; got != want {
		t.Errorf("observer saw %d events, want %d", got, want)
	}
	if len(sink.events) != 3 {
		t.Errorf("sink kept %d events, want 3", len(sink.events))
	}
}

func TestDefaultEventLogPath(t *testing.T) {
	if got := eventLogPath(true); got != "/var/log/rollout/events.jsonl" {
		t.Errorf("root: %q", got)
	}
	t.Setenv("XDG_STATE_HOME", "/state")
	if got := eventLogPath(false); got != "/state/rollout/events.jsonl" {
		t.Errorf("XDG_STATE_HOME: %q", got)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/op")
	if got := eventLogPath(false); got != "/home/op/.local/state/rollout/events.jsonl" {
		t.Errorf("HOME: %q", got)
	}
}

func TestEventJSONShape(t *testing.T) {
	// The contract's first eight fields are always there; the rest only
	// when set.
	line, err := json.Marshal(Event{Event: RunStart, RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"time"`, `"run_id"`, `"event"`, `"duration_ms"`} {
		if !bytes.Contains(line, []byte(key)) {
			t.Errorf("%s lacks %s", line, key)
		}
	}
	for _, key := range []string{`"phase"`, `"cause"`, `"attempt"`} {
		if bytes.Contains(line, []byte(key)) {
			t.Errorf("%s has empty %s", line, key)
		}
	}
}

// A killed writer can leave a torn last line; the next run's first event
// must still be a line of its own, and nothing before it is rewritten.
func TestOpenEventLogEndsATornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	whole := `{"time":"2026-11-25T03:00:00Z","run_id":"a","event":"RUN_START","duration_ms":0}` + "\n"
	torn := `{"time":"2026-11-25T03:00:01Z","run_id":"a","event":"STEP_ST`
	if err := os.WriteFile(path, []byte(whole+torn), 0o640); err != nil {
		t.Fatal(err)
	}
	sink, err := OpenEventLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(Event{Time: time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC), RunID: "b", Event: RunStart}); err != nil {
		t.Fatal(err)
	}
	sink.Close()
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), whole+torn+"\n") {
		t.Fatalf("the earlier content was changed or the torn line not ended:\n%s", data)
	}
	f, _ := os.Open(path)
	defer f.Close()
	evs, bad, err := ReadEvents(f)
	if err != nil || bad != 1 || len(evs) != 2 || evs[1].RunID != "b" {
		t.Errorf("read back %d events (%+v), %d bad lines, err %v; want 2 events, the torn line alone bad", len(evs), evs, bad, err)
	}
}

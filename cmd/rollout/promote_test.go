package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
)

// waiting makes dir look like a live run whose canary waits for a person:
// its waiting file, locked as the run holds it, until the test ends.
func waiting(t *testing.T, dir, runID string) {
	t.Helper()
	f, err := os.OpenFile(executor.WaitingFile(dir, runID), os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("api\n"); err != nil {
		t.Fatal(err)
	}
}

// A run killed while its canary waited leaves its waiting file, unlocked:
// promote says the run is gone instead of promoting into the void.
func TestPromoteOfADeadRun(t *testing.T) {
	dir := t.TempDir()
	ios, _, _ := testStreams()
	if err := os.WriteFile(executor.WaitingFile(dir, "r1"), []byte("api\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	err := promoteRun(&PromoteOptions{IO: ios, RunID: "r1", Dir: dir, Now: time.Now})
	if err == nil || !strings.Contains(err.Error(), "run r1 is not running any more") {
		t.Fatalf("promote of a dead run: %v, want it to say the run is gone", err)
	}
	if _, err := os.Stat(executor.PromotionFile(dir, "r1")); !os.IsNotExist(err) {
		t.Errorf("a promotion was written for a dead run (%v)", err)
	}
}

func readPromotion(t *testing.T, dir, runID string) executor.Promotion {
	t.Helper()
	data, err := os.ReadFile(executor.PromotionFile(dir, runID))
	if err != nil {
		t.Fatal(err)
	}
	var p executor.Promotion
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPromote(t *testing.T) {
	dir := t.TempDir()
	ios, _, errOut := testStreams()
	now := func() time.Time { return time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC) }

	err := promoteRun(&PromoteOptions{IO: ios, RunID: "r1", Dir: dir, Now: now})
	if code := exitCode(err); code != exitUsage || !strings.Contains(err.Error(), "no canary of run r1 is waiting") {
		t.Errorf("promote of a run not waiting: exit %d, %v", code, err)
	}
	if err := promoteRun(&PromoteOptions{IO: ios, RunID: "../x", Dir: dir, Now: now}); exitCode(err) != exitUsage {
		t.Errorf("a run id with a path: %v", err)
	}

	waiting(t, dir, "r1")
	if err := promoteRun(&PromoteOptions{IO: ios, RunID: "r1", Dir: dir, Abort: true, Now: now}); err != nil {
		t.Fatal(err)
	}
	if p := readPromotion(t, dir, "r1"); !p.Abort || p.By == "" || !p.Time.Equal(now()) {
		t.Errorf("promotion %+v, want a rejection naming who, at now", p)
	}
	if !strings.Contains(errOut.String(), "the canary of run r1 is rejected") {
		t.Errorf("stderr: %q", errOut.String())
	}
}

func TestPromoteFromTheTerminal(t *testing.T) {
	for _, tt := range []struct {
		input string
		abort bool
	}{
		{"maybe\n\ny\n", false},
		{"N\n", true},
	} {
		dir := t.TempDir()
		waiting(t, dir, "r1")
		_, _, errOut := testStreams()
		p := &promoter{in: bufio.NewReader(strings.NewReader(tt.input)), errW: errOut, dir: dir, runID: "r1", by: "alice@ops"}
		var seen []executor.Event
		observe := p.observe(func(e executor.Event) { seen = append(seen, e) })
		observe(executor.Event{Event: executor.CanaryWaiting, Service: "api", Message: "waiting"})
		if len(seen) != 1 || !strings.Contains(seen[0].Message, "type y (promote) or n (roll back)") {
			t.Errorf("the waiting event does not say to answer here: %+v", seen)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(executor.PromotionFile(dir, "r1")); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := readPromotion(t, dir, "r1"); got.Abort != tt.abort || got.By != "alice@ops (terminal)" {
			t.Errorf("input %q: promotion %+v, want abort %v by alice@ops (terminal)", tt.input, got, tt.abort)
		}
	}
}

func TestPromoteDirIsTheRunsStateDirectory(t *testing.T) {
	j := executor.DefaultStatePaths(true).Journals
	if got := executor.PromoteDir(j); got != filepath.Join(j, "promote") {
		t.Errorf("PromoteDir = %s", got)
	}
}

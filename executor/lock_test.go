package executor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecondLockFailsNamingTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "rollout", "lock")
	holder := LockHolder{PID: 1234, RunID: "20260301T120000Z-abcdef", Plan: "infra-only", User: "ops", Host: "node1", Started: time.Now().Add(-3*time.Minute - 10*time.Second)}
	first, err := AcquireLock(path, holder)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var written LockHolder
	if err := json.Unmarshal(data, &written); err != nil || written.PID != 1234 || written.Plan != "infra-only" {
		t.Errorf("lock file holds %q (%v)", data, err)
	}

	// flock locks belong to the open file description, so a second open in
	// the same process conflicts just as another process would.
	second, err := AcquireLock(path, LockHolder{PID: 99, RunID: "other", Plan: "all"})
	if err == nil {
		second.Release()
		t.Fatal("second AcquireLock succeeded while the first holds the lock")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v is not ErrLocked", err)
	}
	want := `another rollout run holds ` + path + `: pid 1234, run 20260301T120000Z-abcdef, plan "infra-only", user ops, host node1, started 3m ago`
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
	// The failed attempt must not have rewritten the holder.
	if again, _ := os.ReadFile(path); string(again) != string(data) {
		t.Errorf("lock file changed by the failed attempt: %q", again)
	}

	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	third, err := AcquireLock(path, LockHolder{PID: 5, RunID: "r3", Plan: "p"})
	if err != nil {
		t.Fatalf("lock not free after Release: %v", err)
	}
	defer third.Release()
	data, _ = os.ReadFile(path)
	if err := json.Unmarshal(data, &written); err != nil || written.PID != 5 {
		t.Errorf("lock file after re-acquire holds %q (%v); want only the new holder", data, err)
	}
}

func TestLockedRunFailsBeforeRunStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	held, err := AcquireLock(path, LockHolder{PID: 42, RunID: "busy", Plan: "all", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	rec := &recorder{}
	log := &eventLog{}
	res, err := Run(context.Background(), makePlan(specs("a")...), Options{Build: builder(rec, nil), LockPath: path, Observe: log.observe, RunID: "second"})
	if res.RunID != "" {
		t.Errorf("RunID = %q for a run that never started, want \"\"", res.RunID)
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid 42, run busy") {
		t.Errorf("err = %v, want ErrLocked naming pid 42", err)
	}
	if len(log.events) != 0 || len(rec.snapshot()) != 0 {
		t.Errorf("a locked run emitted %d events and ran %v", len(log.events), rec.snapshot())
	}
}

func TestRunHoldsAndReleasesLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	var during error
	script := map[string]doFunc{"a/restart": func(context.Context, *Env) (Undo, error) {
		l, err := AcquireLock(path, LockHolder{})
		if err == nil {
			l.Release()
		}
		during = err
		return nil, nil
	}}
	res, _ := run(t, context.Background(), makePlan(specs("a")...), Options{Build: builder(nil, script), LockPath: path, RunID: "held-run"})
	if !errors.Is(during, ErrLocked) || !strings.Contains(during.Error(), "held-run") {
		t.Errorf("during the run, AcquireLock = %v; want ErrLocked naming the run", during)
	}
	l, err := AcquireLock(path, LockHolder{})
	if err != nil {
		t.Errorf("lock not released after the run: %v", err)
	} else {
		l.Release()
	}
	if res.ExitCode() != 0 {
		t.Errorf("ExitCode = %d", res.ExitCode())
	}
}

func TestUnreadableHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	held, err := AcquireLock(path, LockHolder{PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(path, LockHolder{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "holder unknown") {
		t.Errorf("err = %v", err)
	}
}

func TestAgoText(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "just now"},
		{45 * time.Second, "45s ago"},
		{3*time.Minute + 59*time.Second, "3m ago"},
		{2 * time.Hour, "2h ago"},
		{2*time.Hour + 5*time.Minute, "2h5m ago"},
	}
	for _, tt := range tests {
		if got := agoText(tt.d); got != tt.want {
			t.Errorf("agoText(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestStatePathsKeyedOnTheManager: the lock and the journals of a user
// manager follow its bus, whatever $XDG_RUNTIME_DIR says; the journals
// live on disk in the state directory.
func TestStatePathsKeyedOnTheManager(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	if got := StatePathsFor(false, env(nil)); got.Lock != "/run/rollout/lock" || got.Journals != "/var/lib/rollout/runs" {
		t.Errorf("system: %+v", got)
	}
	bus := "unix:path=/run/user/1000/bus"
	a := StatePathsFor(true, env(map[string]string{"DBUS_SESSION_BUS_ADDRESS": bus, "XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/u"}))
	b := StatePathsFor(true, env(map[string]string{"DBUS_SESSION_BUS_ADDRESS": bus, "HOME": "/home/u"}))
	c := StatePathsFor(true, env(map[string]string{"DBUS_SESSION_BUS_ADDRESS": bus + ",guid=abc", "XDG_RUNTIME_DIR": "/tmp/elsewhere", "HOME": "/home/u"}))
	if a.Lock != "/run/user/1000/rollout/lock" || b.Lock != a.Lock || c.Lock != a.Lock {
		t.Errorf("one manager, three locks: %q %q %q", a.Lock, b.Lock, c.Lock)
	}
	if a.Journals != "/home/u/.local/state/rollout/runs/run-user-1000-bus" || b.Journals != a.Journals {
		t.Errorf("journals: %q %q", a.Journals, b.Journals)
	}
	if d := StatePathsFor(true, env(map[string]string{"DBUS_SESSION_BUS_ADDRESS": bus, "XDG_STATE_HOME": "/var/state"})); d.Journals != "/var/state/rollout/runs/run-user-1000-bus" {
		t.Errorf("XDG_STATE_HOME: %q", d.Journals)
	}
	other := StatePathsFor(true, env(map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:path=/tmp/x/bus", "HOME": "/home/u"}))
	if other.Lock == a.Lock || other.Journals == a.Journals {
		t.Errorf("two managers share %q / %q", other.Lock, other.Journals)
	}
	abstract := StatePathsFor(true, env(map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:abstract=/tmp/dbus-X", "HOME": "/home/u"}))
	if !strings.HasPrefix(abstract.Lock, "/tmp/rollout-") || !strings.HasSuffix(abstract.Lock, "/lock") {
		t.Errorf("abstract bus: %q", abstract.Lock)
	}
}

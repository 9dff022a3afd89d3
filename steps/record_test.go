package steps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdfake"
	"github.com/rollout-sh/rollout/planner"
)

// TestRecordRoundTrip: every undo type writes itself down and Recover
// builds the same undo back (same record, same description), the way
// `rollout recover` rebuilds a dead run's rollback stack.
func TestRecordRoundTrip(t *testing.T) {
	fake := systemdfake.New()
	health := planner.Health{Kind: dsl.HealthHTTP, URL: "http://127.0.0.1:1/health", Timeout: 2 * time.Second, Retries: 3, Interval: 200 * time.Millisecond}
	job := unitJob{unit: "a.service", timeout: 90 * time.Second, rollbackTimeout: 4 * time.Minute, health: health, sd: fake, check: CheckHealth}
	undos := []executor.Undo{
		&backupUnitUndo{path: "/etc/systemd/system/a.service", file: "/etc/systemd/system/a.service", backup: "/etc/systemd/system/a.service.backup", sd: fake},
		&rsyncUndo{to: "/srv/a", snapshot: "/srv/.a.rollout-snapshot-run", complete: true},
		&rsyncUndo{to: "/srv/a", snapshot: "/srv/.a.rollout-snapshot-run", exclude: []string{"data/", "*.sqlite"}},
		&releaseUndo{base: "/srv/a", back: "20260101T000000Z-000001", discard: "20260102T000000Z-000002"},
		&releaseUndo{base: "/srv/a"},
		&reopenUndo{unitJob: job, stop: true},
		&reopenUndo{unitJob: job, stop: false},
		&stopUndo{unitJob: job},
		&commandUndo{cmd: command{argv: []string{"migrate", "down", "; rm -rf /"}, dir: "/srv/a", env: []string{"A=1"}, timeout: time.Minute}},
		irreversibleUndo{name: "migrate"},
	}
	for _, u := range undos {
		r, ok := u.(executor.Recordable)
		if !ok {
			t.Errorf("%T is not Recordable", u)
			continue
		}
		rec := r.Record()
		back, err := Recover(rec, Deps{Systemd: fake})
		if err != nil {
			t.Errorf("Recover(%+v): %v", rec, err)
			continue
		}
		if got := back.(executor.Recordable).Record(); !reflect.DeepEqual(got, rec) {
			t.Errorf("%T: round trip\n got %+v\nwant %+v", u, got, rec)
		}
		if back.Describe() != u.Describe() {
			t.Errorf("%T: Describe %q, want %q", u, back.Describe(), u.Describe())
		}
		_, reopener := u.(executor.Reopener)
		if _, ok := back.(executor.Reopener); ok != reopener {
			t.Errorf("%T: recovered as Reopener=%v, want %v", u, ok, reopener)
		}
	}
}

// TestRecoveredUndosWork runs recovered undos against a real directory and
// the fake manager: the restored unit file and the reopened unit.
func TestRecoveredUndosWork(t *testing.T) {
	dir := t.TempDir()
	unit := filepath.Join(dir, "a.service")
	if err := os.WriteFile(unit, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unit+".backup", []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := systemdfake.New()
	fake.AddUnit("a.service", false)
	deps := Deps{Systemd: fake}
	restore, err := Recover(executor.UndoRecord{Kind: RecordRestoreUnitFile, Args: map[string]string{"path": unit, "backup": unit + ".backup"}}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := restore.Undo(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(unit); string(b) != "old\n" || fake.DaemonReloads() != 1 {
		t.Errorf("unit file %q after recovered restore, %d daemon-reloads", b, fake.DaemonReloads())
	}
	reopen, err := Recover(executor.UndoRecord{Kind: RecordReopenUnit, Args: map[string]string{"unit": "a.service", "stop": "true",
		"health": `{"Kind":"systemd","Timeout":1000000000,"Retries":1,"Interval":10000000}`}}, deps)
	if err != nil {
		t.Fatal(err)
	}
	ro := reopen.(executor.Reopener)
	if err := ro.Undo(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := fake.Unit("a.service"); st.ActiveState == "active" {
		t.Errorf("recovered reopen did not stop the unit")
	}
	if err := ro.Reopen(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := fake.Unit("a.service"); st.ActiveState != "active" {
		t.Errorf("recovered reopen left the unit %s", st.ActiveState)
	}
}

// TestInFlightRecords: a restart (either kind) and an exec step say what
// undoes them while they run; a start or a stop cannot know before Do.
func TestInFlightRecords(t *testing.T) {
	job := unitJob{unit: "a.service", timeout: time.Minute}
	cases := []struct {
		step executor.Step
		kind string // "" = none
	}{
		{&unitJobStep{unitJob: job, op: OpRestart}, RecordReopenUnit},
		{&reloadOrRestartStep{unitJob: job}, RecordReopenUnit},
		{&unitJobStep{unitJob: job, op: OpStart}, ""},
		{&unitJobStep{unitJob: job, op: OpStop}, ""},
		{&execStep{name: "migrate", cmd: command{argv: []string{"up"}}, rollback: []string{"down"}}, RecordRunCommand},
		{&execStep{name: "migrate", cmd: command{argv: []string{"up"}}}, RecordIrreversible},
	}
	for _, tc := range cases {
		r, ok := tc.step.(executor.InFlightRecordable)
		var kind string
		if ok {
			if rec, ok := r.InFlightRecord(nil); ok {
				kind = rec.Kind
			}
		}
		if kind != tc.kind {
			t.Errorf("%T %+v: in-flight record %q, want %q", tc.step, tc.step, kind, tc.kind)
		}
	}
}

// TestRecoverRejectsBadRecords: a damaged journal gives errors, never a
// panic and never an undo that would act on a guessed value.
func TestRecoverRejectsBadRecords(t *testing.T) {
	cases := []struct {
		rec  executor.UndoRecord
		want string
	}{
		{executor.UndoRecord{Kind: "format_disk"}, "unknown undo record kind"},
		{executor.UndoRecord{}, "unknown undo record kind"},
		{executor.UndoRecord{Kind: RecordRestoreUnitFile, Args: map[string]string{"path": "/x"}}, `"backup" is missing`},
		{executor.UndoRecord{Kind: RecordRestoreSnapshot, Args: map[string]string{"snapshot": "/s"}}, `"to" is missing`},
		{executor.UndoRecord{Kind: RecordReopenUnit}, `"unit" is missing`},
		{executor.UndoRecord{Kind: RecordSwitchRelease, Args: map[string]string{"back": "x"}}, `"base" is missing`},
		{executor.UndoRecord{Kind: RecordSwitchRelease, Args: map[string]string{"base": "/srv/a", "discard": "../../etc"}}, "not a release id"},
		{executor.UndoRecord{Kind: RecordReopenUnit, Args: map[string]string{"unit": "a", "timeout": "soon"}}, "not a positive duration"},
		{executor.UndoRecord{Kind: RecordReopenUnit, Args: map[string]string{"unit": "a", "health": "{"}}, `"health"`},
		{executor.UndoRecord{Kind: RecordRunCommand, Args: map[string]string{"argv": "[]"}}, "empty argv"},
		{executor.UndoRecord{Kind: RecordRunCommand, Args: map[string]string{"argv": `"sh -c x"`}}, `"argv"`},
		{executor.UndoRecord{Kind: RecordRunCommand}, `"argv" is missing`},
	}
	for _, tc := range cases {
		u, err := Recover(tc.rec, Deps{Systemd: systemdfake.New()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Recover(%+v) = %v, %v; want error containing %q", tc.rec, u, err, tc.want)
		}
	}
	if _, err := Recover(executor.UndoRecord{Kind: RecordStopUnit, Args: map[string]string{"unit": "a"}}, Deps{}); err == nil {
		t.Errorf("a unit undo without a backend was rebuilt")
	}
	// An irreversible record still says so when undone.
	u, err := Recover(executor.UndoRecord{Kind: RecordIrreversible, Step: "migrate"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Undo(context.Background(), nil); !errors.Is(err, executor.ErrIrreversible) {
		t.Errorf("irreversible undo = %v", err)
	}
}

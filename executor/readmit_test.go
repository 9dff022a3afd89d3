package executor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakeReadmitter is a Readmitter: the undo of a drain.
type fakeReadmitter struct{ fakeUndo }

func (*fakeReadmitter) Readmit() {}

// A service that does not come back stays out of traffic: its readmission
// is held back and the rollback fails, naming it for the person who must act.
func TestReadmissionHeldBackWhenReopenFails(t *testing.T) {
	rec := &recorder{}
	plan := makePlan(svcSpec{def: "a", steps: []string{"drain", "restart", "verify"}})
	script := map[string]doFunc{
		"a/drain":   returning(&fakeReadmitter{fakeUndo{name: "drain", rec: rec}}, nil),
		"a/restart": returning(&fakeReopener{fakeUndo: fakeUndo{name: "restart", rec: rec}, reopenErr: errors.New("still unhealthy")}, nil),
		"a/verify":  returning(nil, errors.New("unhealthy")),
	}
	res, log := run(t, context.Background(), plan, Options{Build: builder(rec, script)})
	want := []string{"do a/drain", "do a/restart", "do a/verify", "undo restart", "reopen restart"}
	if got := rec.snapshot(); !slices.Equal(got, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.ExitCode() != 3 {
		t.Errorf("exit %d, want 3 (a rollback failed)", res.ExitCode())
	}
	failed := log.find(RollbackFailed, "a")
	if len(failed) != 1 {
		t.Fatalf("%d ROLLBACK_FAILED events, want 1", len(failed))
	}
	if !strings.Contains(failed[0].Error, "drain: not done, the service did not come back") {
		t.Errorf("ROLLBACK_FAILED error %q does not name the held-back readmission", failed[0].Error)
	}
	if !strings.Contains(failed[0].Message, "undo drain") {
		t.Errorf("ROLLBACK_FAILED message %q does not list the readmission as not restored", failed[0].Message)
	}
}

package executor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestRecoverRecordsEachUndoAndResumes: a recovery stopped (the second
// Ctrl-C) after its first undo leaves that undo marked done in the journal
// and the journal in place; the next recovery runs only what is left, and
// reports success.
func TestRecoverRecordsEachUndoAndResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-run"+journalExt)
	dead := &Journal{RunID: "dead-run", Plan: "sso", Services: []JournalService{{Name: "a", Unit: "a.service", Undos: []JournalUndo{
		{UndoRecord: UndoRecord{Kind: "fake", Step: "backup", Args: map[string]string{"name": "backup"}}, Recorded: true},
		{UndoRecord: UndoRecord{Kind: "fake", Step: "deploy", Args: map[string]string{"name": "deploy"}}, Recorded: true},
	}, Step: "migrate", InFlight: &UndoRecord{Kind: "fake", Step: "migrate", Args: map[string]string{"name": "migrate"}}}}}
	if err := writeJournalFile(dead, path); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	abort := make(chan struct{})
	rebuild := func(r UndoRecord) (Undo, error) {
		return &hookUndo{fakeUndo: fakeUndo{name: r.Args["name"], rec: rec}, after: func() {
			// Interrupted while the first undo runs.
			if r.Args["name"] == "migrate" {
				close(abort)
			}
		}}, nil
	}
	j, err := ReadJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	log := &eventLog{}
	res, err := Recover(context.Background(), j, RecoverOptions{Rebuild: rebuild, Observe: log.observe, Abort: abort})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || len(res.RollbackFailed) != 0 || len(log.find(RunFailed, "")) != 0 {
		t.Fatalf("interrupted recovery: %+v, events %q", res, log.lines())
	}
	if got := rec.snapshot(); !slices.Equal(got, []string{"undo migrate"}) {
		t.Fatalf("first recovery ran %q", got)
	}

	j, err = ReadJournal(path)
	if err != nil || len(j.Services) != 1 {
		t.Fatalf("journal after the interrupted recovery: %+v, %v", j, err)
	}
	log = &eventLog{}
	res, err = Recover(context.Background(), j, RecoverOptions{Rebuild: rebuild, Observe: log.observe})
	if err != nil {
		t.Fatal(err)
	}
	if res.Interrupted || !slices.Equal(res.RolledBack, []string{"a"}) || res.ExitCode() != 1 {
		t.Errorf("second recovery: %+v", res)
	}
	if got := rec.snapshot(); !slices.Equal(got, []string{"undo migrate", "undo deploy", "undo backup"}) {
		t.Errorf("the two recoveries ran %q: each undo once", got)
	}
	if j, _ := ReadJournal(path); len(j.Services) != 0 {
		t.Errorf("the recovered service is still in the journal: %+v", j.Services)
	}
}

// hookUndo is a fakeUndo that calls after once it ran.
type hookUndo struct {
	fakeUndo
	after func()
}

func (u *hookUndo) Undo(ctx context.Context, env *Env) error {
	err := u.fakeUndo.Undo(ctx, env)
	u.after()
	return err
}

// TestRecoverKillsTheDeadRunsChildren: a process group a dead run's step
// started (a shell and its own child) is killed before anything is
// undone; a group whose number now belongs to someone else is not.
func TestRecoverKillsTheDeadRunsChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	go cmd.Wait()
	proc := processOf("migrate", cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for len(groupMembers(proc.PGID)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the shell's child never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec := &recorder{}
	j := &Journal{RunID: "dead-run", Services: []JournalService{{Name: "a", Unit: "a.service", Procs: []JournalProc{proc},
		Step: "migrate", InFlight: &UndoRecord{Kind: "fake", Step: "migrate", Args: map[string]string{"name": "migrate"}}}}}
	rebuild := func(r UndoRecord) (Undo, error) {
		return &hookUndo{fakeUndo: fakeUndo{name: r.Args["name"], rec: rec}, after: func() {
			if m := groupMembers(proc.PGID); len(m) > 0 {
				rec.add("undo ran while %v lived", m)
			}
		}}, nil
	}
	res, err := Recover(context.Background(), j, RecoverOptions{Rebuild: rebuild})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.snapshot(); !slices.Equal(got, []string{"undo migrate"}) || !slices.Equal(res.RolledBack, []string{"a"}) {
		t.Errorf("recovery: %q, %+v", got, res)
	}

	// Someone else's group with the recorded number is left alone.
	other := processOf("migrate", os.Getpid())
	other.Start++
	if other.ours() {
		t.Errorf("a group whose leader started at another time counts as the dead run's")
	}
	if stale := (JournalProc{PGID: os.Getpid(), Boot: "another-boot"}); stale.ours() {
		t.Errorf("a group of another boot counts as the dead run's")
	}
}

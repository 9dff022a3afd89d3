package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/runview"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// RecoverOptions are the inputs of `rollout recover`.
type RecoverOptions struct {
	IO     *IOStreams
	User   bool
	Events string
	JSON   bool

	Systemd  func(ctx context.Context, user bool) (steps.Backend, error)
	LockPath string // tests
	// Signals delivers interrupts; nil means SIGINT, SIGTERM and SIGHUP.
	Signals <-chan os.Signal
}

// NewCmdRecover builds `recover`.
func NewCmdRecover(io *IOStreams, runF func(*RecoverOptions) error) *cobra.Command {
	opts := &RecoverOptions{IO: io, Systemd: connectSystemd}
	cmd := &cobra.Command{
		Use:   "recover [--user] [--events FILE] [--json]",
		Short: "Roll back the services a run that died (killed, crashed) left in flight",
		Long: `A run that dies without finishing (SIGKILL, a crash, a lost machine) leaves
its journal next to the run lock, and every later run refuses to start until
it is recovered. recover takes the lock, prints what it will do, and rolls
back each service that run had in flight with the same rollback a failed
restart gets (stop, restore code and unit file, daemon-reload, start, verify
health). Its events carry the original run id and go to that run's events
log unless --events says otherwise.

Each undo done is recorded in the journal before the next starts, so recover
may be interrupted (Ctrl-C once: the service being rolled back finishes; twice:
stop after the current undo) and run again: it goes on where it stopped and
repeats nothing. The commands a dead run had started (a migration, rsync) die
with it; recover makes sure none of them still runs before it undoes anything.

Exit status: 0 every service recovered (or nothing to do); 2 another run
holds the lock or the manager cannot be reached; 3 a rollback failed and a
person must act; 130 interrupted (run recover again).`,
		Example: `  rollout recover
  rollout recover --user --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return recoverRun(opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&opts.User, "user", false, "recover runs of the user's systemd manager instead of the system one")
	fs.StringVar(&opts.Events, "events", "", "append events to this JSONL `FILE` (default: the dead run's events log)")
	fs.BoolVar(&opts.JSON, "json", false, "stream events as JSON lines on stdout")
	return cmd
}

func recoverRun(opts *RecoverOptions) error {
	state := executor.DefaultStatePaths(opts.User)
	lockPath, journals := opts.LockPath, state.Journals
	if lockPath == "" {
		lockPath = state.Lock
	} else {
		journals = executor.JournalDir(lockPath)
	}
	holder := executor.LockHolder{PID: os.Getpid(), RunID: "recover", Plan: "(rollout recover)", Started: time.Now(), Journals: journals}
	holder.Host, _ = os.Hostname()
	lock, err := executor.AcquireLock(lockPath, holder)
	if err != nil {
		if errors.Is(err, executor.ErrLocked) {
			return usageError("%v; a live run is not recovered: wait for it or interrupt it", err)
		}
		return usageError("%v", err)
	}
	defer lock.Release()

	// The dead run named its journal directory in the lock file: its
	// environment may have pointed elsewhere than ours.
	dirs := []string{journals}
	if lock.Previous != nil {
		dirs = append(dirs, lock.Previous.Journals)
	}
	journalList, err := executor.UnfinishedRuns(dirs...)
	if err != nil {
		return usageError("%v", err)
	}
	if len(journalList) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "rollout: no unfinished run: nothing to recover")
		return nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deps := steps.Deps{}
	if journalsNeedLocal(journalList) {
		sd, err := opts.Systemd(ctx, opts.User)
		if err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("cannot reach the systemd manager: %w", err)}
		}
		defer sd.Close()
		deps.Systemd = sd
	}
	if journalsNeedHosts(journalList) {
		hosts, err := openHosts(ctx)
		if err != nil {
			return usageError("%v", err)
		}
		defer hosts.Close()
		deps.Hosts = hosts.Get
	}

	// Signals as in run: the first lets the service being rolled back
	// finish and starts no other, the second stops after the undo running
	// now. The journal keeps each undo done, so the next recover resumes.
	stop, abort := make(chan struct{}), make(chan struct{})
	stopSignals := watchRecoverSignals(opts, stop, abort)
	defer stopSignals()

	printer := runview.NewPrinter(opts.IO.Out, opts.IO.ErrOut, opts.JSON)
	code := exitOK
	for _, j := range journalList {
		describeRecovery(opts, j, deps)
		eventsPath := opts.Events
		if eventsPath == "" {
			eventsPath = j.EventsLog
		}
		if eventsPath == "" {
			eventsPath = executor.DefaultEventLogPath()
		}
		sink, err := executor.OpenEventLog(eventsPath)
		if err != nil {
			return usageError("cannot open the events log: %v; pass `--events FILE` to write it elsewhere", err)
		}
		res, rerr := executor.Recover(ctx, j, executor.RecoverOptions{
			Rebuild: func(rec executor.UndoRecord) (executor.Undo, error) { return steps.Recover(rec, deps) },
			RebuildOn: func(rec executor.UndoRecord, h *planner.Host) (executor.Undo, error) {
				return steps.RecoverOn(rec, deps, h)
			},
			Events:  sink,
			Observe: printer.Observe,
			Stop:    stop,
			Abort:   abort,
		})
		sink.Close()
		if rerr != nil {
			fmt.Fprintf(opts.IO.ErrOut, "rollout: %v\n", rerr)
		}
		if res.Interrupted {
			// Each undo done is in the journal: the next recover goes on
			// from there and repeats none of them.
			if len(res.RollbackFailed) > 0 {
				fmt.Fprintf(opts.IO.ErrOut, "rollout: ROLLBACK FAILED for %v of run %s: a person must act; see the ROLLBACK_FAILED events in %s\n", res.RollbackFailed, j.RunID, eventsPath)
				return silentExit(exitRollbackFailed)
			}
			fmt.Fprintf(opts.IO.ErrOut, "rollout: recovery of run %s interrupted; what it undid is recorded in %s: run `rollout recover%s` again to finish\n", j.RunID, j.Path, userFlag(opts.User))
			return silentExit(exitInterrupted)
		}
		// The journal goes even after a failed rollback: ROLLBACK_FAILED
		// says what a person must do, and running the same undos again
		// would not help.
		if err := executor.RemoveJournal(j); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "rollout: %v\n", err)
		}
		switch {
		case len(res.RollbackFailed) > 0:
			fmt.Fprintf(opts.IO.ErrOut, "rollout: ROLLBACK FAILED for %v of run %s: a person must act; see the ROLLBACK_FAILED events in %s\n", res.RollbackFailed, j.RunID, eventsPath)
			code = exitRollbackFailed
		default:
			fmt.Fprintf(opts.IO.ErrOut, "rollout: run %s recovered: %s rolled back\n", j.RunID, plural(len(res.RolledBack), "service"))
		}
	}
	return silentExit(code)
}

func userFlag(user bool) string {
	if user {
		return " --user"
	}
	return ""
}

// watchRecoverSignals closes stop at the first SIGINT, SIGTERM or SIGHUP
// and abort at the second.
func watchRecoverSignals(opts *RecoverOptions, stop, abort chan struct{}) func() {
	sigs := opts.Signals
	var ch chan os.Signal
	if sigs == nil {
		ch = make(chan os.Signal, 2)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		sigs = ch
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(opts.IO.ErrOut, "rollout: interrupted: the service being rolled back finishes its rollback; no other starts. Interrupt again to stop after the current undo.")
		close(stop)
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(opts.IO.ErrOut, "rollout: interrupted again: stopping after the current undo.")
		close(abort)
	}()
	return func() {
		close(done)
		if ch != nil {
			signal.Stop(ch)
		}
	}
}

// describeRecovery prints what recover is about to do for one dead run.
func describeRecovery(opts *RecoverOptions, j *executor.Journal, deps steps.Deps) {
	w := opts.IO.ErrOut
	fmt.Fprintf(w, "rollout: run %s of plan %q (%s, pid %d, started %s) did not finish.\n",
		j.RunID, j.Plan, filepath.Base(j.PlanFile), j.PID, j.Started.Local().Format(time.RFC3339))
	if len(j.Services) == 0 {
		fmt.Fprintln(w, "  no service was in flight; removing its journal")
		return
	}
	for _, s := range j.Services {
		fmt.Fprintf(w, "  %s (%s): roll back", s.Name, s.Unit)
		if s.Step != "" {
			fmt.Fprintf(w, "; step %s was running", s.Step)
		}
		fmt.Fprintln(w)
		if s.InFlight != nil && !s.RollingBack {
			what := s.InFlight.Kind
			if u, err := steps.Recover(*s.InFlight, deps); err == nil {
				what = u.Describe()
			}
			fmt.Fprintf(w, "    - undo the interrupted step %s: %s\n", s.InFlight.Step, what)
		}
		for k := len(s.Undos) - 1; k >= 0; k-- {
			u := s.Undos[k]
			if u.Undone {
				fmt.Fprintf(w, "    - (already undone) %s\n", u.Describe)
				continue
			}
			fmt.Fprintf(w, "    - %s\n", u.Describe)
		}
		for _, u := range s.Undos {
			if u.Reopen != "" {
				fmt.Fprintf(w, "    - then %s\n", u.Reopen)
			}
		}
	}
}

// absPath makes a path absolute for the journal, which a later process in
// another directory reads; it is left as is when that fails.
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// journalsNeedLocal says whether a journal holds a service that ran where
// rollout runs (or has no services, so that a run that died before its
// first service still reports the local manager as before).
func journalsNeedLocal(js []*executor.Journal) bool {
	for _, j := range js {
		if len(j.Services) == 0 {
			return true
		}
		for _, s := range j.Services {
			if s.Host == nil {
				return true
			}
		}
	}
	return false
}

func journalsNeedHosts(js []*executor.Journal) bool {
	for _, j := range js {
		for _, s := range j.Services {
			if s.Host != nil {
				return true
			}
		}
	}
	return false
}

// Package executor runs a compiled plan: it walks the dependency DAG, runs
// each service's steps in order, keeps a rollback stack per service, writes
// events, holds the run lock and reacts to signals.
//
// The executor knows no step by name. It gets a Builder that turns each
// planner.Step into a Step, and a Step's work returns the Undo that reverses
// exactly what the work changed.
package executor

import (
	"context"
	"errors"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// Step is one step of one service, ready to run.
type Step interface {
	// Do performs the step. It returns the Undo for what it changed, or nil
	// when it changed nothing. A step that fails part-way returns the Undo
	// for the part it did together with its error.
	Do(ctx context.Context, env *Env) (Undo, error)
}

// Undo reverses one step's work during a rollback.
type Undo interface {
	// Describe says what Undo will do, for events and --dry-run ("restore
	// /etc/systemd/system/x.service from x.service.backup, daemon-reload").
	Describe() string
	Undo(ctx context.Context, env *Env) error
}

// Reopener is an Undo that brackets the undos before it on the stack: the
// executor calls its Undo first (stop the unit), then the earlier steps'
// undos (restore code, restore the unit file, daemon-reload), then Reopen
// (start the unit, verify health). This is the reference's rollback flow.
type Reopener interface {
	Undo
	// DescribeReopen says what Reopen will do ("start x.service, verify health").
	DescribeReopen() string
	Reopen(ctx context.Context, env *Env) error
}

// Readmitter is an optional interface of an Undo that belongs after the
// service is back: putting an instance back into a load balancer's traffic
// (the undo of a drain). The rollback runs such undos last, after every
// Reopen, since a drain pushed before a restart would otherwise send
// traffic to a stopped unit; and only when every Reopen succeeded, since a
// service that did not come back must stay out of traffic. A readmission
// that was held back is reported as not restored.
type Readmitter interface {
	Undo
	// Readmit marks the interface; it does nothing.
	Readmit()
}

// Committer is an optional interface of an Undo. Commit cleans up what an
// Undo kept for a rollback that is no longer needed, e.g. a code snapshot.
// The executor calls it after the service restarted successfully; an error
// is reported to the observer but does not fail the service, since the
// restart itself succeeded.
type Committer interface {
	Commit(ctx context.Context) error
}

// Discarder is an optional interface of an Undo that keeps something for
// its own sake (a code snapshot) after it ran: Discard drops it. The
// executor calls it once the undo is recorded as done in the crash journal
// (never before, so a recovery never finds the undo due and what it needs
// gone), also for an undo a dead run's rollback had done. An error is only
// reported: the undo itself succeeded.
type Discarder interface {
	Discard(ctx context.Context) error
}

// ErrIrreversible is returned (wrapped) by an Undo that cannot reverse its
// step, such as an exec step without rollback_command. The rollback goes on
// and the event says so; it does not count as a failed rollback.
var ErrIrreversible = errors.New("irreversible")

// Builder turns a planned step into a runnable Step.
type Builder func(svc *planner.Service, step *planner.Step) (Step, error)

// Env is what a running step may use besides its own arguments.
type Env struct {
	RunID   string
	Service *planner.Service
	Step    *planner.Step
	Force   bool
	// Expected is how long this step of this service took at best over
	// its last few successes in the events log; 0 when unknown. A health
	// check probes most often around the moment the service became
	// healthy before.
	Expected time.Duration
	// Logf records a line of step output (command output, retries); the
	// executor forwards it to the observer, never to the events log.
	Logf func(format string, args ...any)
	// Attempt reports the current attempt of a retrying step (health
	// checks), for the live view.
	Attempt func(n int)

	// The hooks below are set by the executor; steps call them through
	// the nil-safe methods of the same meaning.
	JournalFunc func(rec UndoRecord) error
	ProcessFunc func(pid int)
	ReportFunc  func(msg string)
	PhaseFunc   func(phase string)
}

// Phase says which phase of a long step is running ("verify green",
// "switch blue → green"), for the live view and the text output; the
// events log gets what the step reports (Report) at its end.
func (e *Env) Phase(phase string) {
	if e != nil && e.PhaseFunc != nil {
		e.PhaseFunc(phase)
	}
}

// JournalInFlight makes rec the running step's in-flight undo in the crash
// journal, durably, before it returns: a step calls it before it changes
// something whose undo it knows only now (a snapshot just taken, a unit's
// state just read). An error means the journal could not be written; the
// step must not go on to change anything.
func (e *Env) JournalInFlight(rec UndoRecord) error {
	if e == nil || e.JournalFunc == nil {
		return nil
	}
	return e.JournalFunc(rec)
}

// ProcessStarted records a child the step started as the leader of its own
// process group, so that recovery kills the group before it undoes
// anything.
func (e *Env) ProcessStarted(pid int) {
	if e != nil && e.ProcessFunc != nil {
		e.ProcessFunc(pid)
	}
}

// Report adds a sentence to the step's end event in the events log (an
// undo names what it discarded).
func (e *Env) Report(msg string) {
	if e != nil && e.ReportFunc != nil {
		e.ReportFunc(msg)
	}
}

// Options controls Run.
type Options struct {
	Build Builder
	// Parallel is how many services may restart at once; 0 = unbounded.
	Parallel int
	// TurnWait bounds how long a service started together with others
	// waits, without progress, for those started before it to send their
	// job (WaitTurn); 0 = 20 ms. Tests on a loaded machine make it long
	// when the order, not the bound, is under test.
	TurnWait    time.Duration
	OnFailure   string // dsl.OnFailureAbort (default) or dsl.OnFailureContinue
	MaxFailures int    // with OnFailureContinue: stop starting services after this many failures; 0 = no limit
	Force       bool
	RunID       string // generated when ""
	// LockPath is the single-run lock for the manager this run talks to;
	// "" runs without it (a plan on hosts only, or tests). A held lock
	// fails Run at once with an error naming the holder (pid, run id,
	// plan, start time).
	LockPath string
	// JournalDir is where the run's crash journal goes (default
	// JournalDir(LockPath); none when both are ""); see StatePaths. A run
	// refuses to start while a dead run's journal is there; it locks its
	// own, so a live run's journal is never taken for a dead one's.
	JournalDir string
	// LockHosts, when set, takes the run's locks on the hosts it touches,
	// after the local lock; an error (another run holds a host) fails Run
	// before it starts, as a held local lock does. release frees them when
	// the run ends.
	LockHosts func(ctx context.Context, holder LockHolder) (release func(), err error)
	// Abort is closed on a second interrupt: steps in flight are cancelled
	// and rolled back at once. Cancelling Run's ctx (the first interrupt)
	// only stops new services from starting.
	Abort <-chan struct{}
	// Events receives every event; Sink implementations write JSONL.
	Events Sink
	// Observe, when set, sees every event and step log line as it happens
	// (the CLI's live view). It must not block.
	Observe func(Event)
	// Now is time.Now unless a test sets it.
	Now func() time.Time
	// PlanFile and EventsLog are written into the run journal, so that
	// `rollout recover` can name the plan and append to the same log.
	// The run also reads EventsLog's recent runs: how long each service
	// took ranks services the plan alone cannot tell apart (newSchedule).
	PlanFile  string
	EventsLog string
	// UserManager says the run talks to the user's systemd manager; the
	// manual commands printed after a failed rollback then use
	// `systemctl --user` instead of `sudo systemctl`.
	UserManager bool
	// BuildCheck builds the checks of a canary's observation; a plan with
	// a canary fails its canary without it.
	BuildCheck CheckBuilder
	// PromoteDir is where a canary waiting for a person looks for its
	// promotion (see Promote); default PromoteDir(the journal directory).
	// Without either, only automatic promotion works.
	PromoteDir string
	// Preflight, when set, is checked under the lock before the run
	// starts; a problem fails Run with a *PreflightError, before any event.
	Preflight *PreflightOptions
	// Warn receives what the operator should know that is not an error
	// (a dead run's empty journal removed).
	Warn func(string)
}

// Result is what a run did, per service, as the reference's rollingRestart()
// returns it.
type Result struct {
	RunID          string
	Succeeded      []string
	Failed         []string // failed and rolled back (or nothing to roll back)
	RolledBack     []string
	RollbackFailed []string // a person must act
	Skipped        []string // never started: a dependency failed, or the run stopped
	// Irreversible maps a rolled-back service to the steps whose changes
	// its rollback could not undo (see Event.Irreversible).
	Irreversible map[string][]string
	Interrupted  bool
	Duration     time.Duration
}

// ExitCode maps a result to the contract's exit codes: 0 all done, 1 a
// service failed and was rolled back, 3 a rollback failed, 130 interrupted.
func (r Result) ExitCode() int {
	switch {
	case len(r.RollbackFailed) > 0:
		return 3
	case r.Interrupted:
		return 130
	case len(r.Failed) > 0:
		return 1
	}
	return 0
}

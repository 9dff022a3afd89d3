package executor

import "time"

// Event names, as in the design contract.
const (
	RunStart              = "RUN_START"
	RunSuccess            = "RUN_SUCCESS"
	RunFailed             = "RUN_FAILED"
	ServiceRestartStart   = "SERVICE_RESTART_START"
	ServiceRestartSuccess = "SERVICE_RESTART_SUCCESS"
	ServiceRestartFailed  = "SERVICE_RESTART_FAILED"
	ServiceSkipped        = "SERVICE_SKIPPED"
	StepStart             = "STEP_START"
	StepSuccess           = "STEP_SUCCESS"
	StepFailed            = "STEP_FAILED"
	RollbackStart         = "ROLLBACK_START"
	RollbackSuccess       = "ROLLBACK_SUCCESS"
	RollbackFailed        = "ROLLBACK_FAILED"
	// CanaryStart: a service's canaries restarted well and are now
	// observed (Message: which, for how long, which checks, and how they
	// are promoted). Service is the declared service.
	CanaryStart = "CANARY_START"
	// CanaryPromoted: the canaries passed their checks and were promoted
	// (automatically or by a person, in Message); the rest restart.
	CanaryPromoted = "CANARY_PROMOTED"
	// CanaryFailed: a check failed (Error), a canary's own pipeline
	// failed, a person rejected it, or nobody promoted it in time; the
	// canaries are rolled back and the rest never touched.
	CanaryFailed = "CANARY_FAILED"
	// NotifyFailed records a notification (a notify block of the plan)
	// that could not be delivered; Cause holds the event it was for. It
	// never changes the run's result.
	NotifyFailed = "NOTIFY_FAILED"
)

// Event is one line of the events log. The first eight fields are the
// contract; the rest are optional and omitted when empty.
type Event struct {
	Time    time.Time `json:"time"`
	RunID   string    `json:"run_id"`
	Event   string    `json:"event"`
	Service string    `json:"service,omitempty"`
	// Host names the host of an instance that runs on one; its Service
	// is then "SERVICE@HOST".
	Host string `json:"host,omitempty"`
	// Instance names the instance of a template unit ("2" of
	// "api@.service"); its Service is then "SERVICE:INSTANCE[@HOST]".
	Instance   string `json:"instance,omitempty"`
	Unit       string `json:"unit,omitempty"`
	Step       string `json:"step,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`

	Plan    string `json:"plan,omitempty"`    // RUN_* events
	Phase   string `json:"phase,omitempty"`   // "rollback" on the STEP_* events of a rollback
	Message string `json:"message,omitempty"` // what happened, or what a person must do
	Cause   string `json:"cause,omitempty"`   // SERVICE_SKIPPED: the failed dependency
	Attempt int    `json:"attempt,omitempty"`
	// Irreversible, on ROLLBACK_SUCCESS and ROLLBACK_FAILED, names the
	// steps whose changes the rollback left in place because nothing can
	// undo them (a migration without rollback_command): the service is
	// back on its old code, but what these steps changed is not restored.
	Irreversible []string `json:"irreversible,omitempty"`
}

// Sink receives events in order. The JSONL file sink appends each event
// with one write(2) of one line.
type Sink interface {
	Write(Event) error
	Close() error
}

// Observer-only events: Options.Observe sees them, the events log never does.
const (
	// StepLog carries one line of step output (Env.Logf) or a note such as
	// a failed Commit, in Message.
	StepLog = "STEP_LOG"
	// StepAttempt reports the current attempt of a retrying step
	// (Env.Attempt), in Attempt.
	StepAttempt = "STEP_ATTEMPT"
	// CanaryWaiting: a canary passed its observation and waits for a
	// person (`rollout promote RUN_ID`); Message says how long.
	CanaryWaiting = "CANARY_WAITING"
	// StepPhase reports the phase a long step entered (Env.Phase), in
	// Message.
	StepPhase = "STEP_PHASE"
)

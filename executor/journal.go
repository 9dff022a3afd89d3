package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// UndoRecord is an Undo written down as data, so that a later process can
// rebuild it after the run that pushed it died (SIGKILL, power loss).
// Kind names the undo ("restore_unit_file", "reopen_unit", ...), Step the
// step that pushed it, Args whatever the undo needs, as strings.
type UndoRecord struct {
	Kind string            `json:"kind"`
	Step string            `json:"step"`
	Args map[string]string `json:"args,omitempty"`
}

// Recordable is an optional interface of an Undo: one that can be written
// to the run journal. An Undo that is not Recordable is journaled by its
// description only, and recovering it fails (a person must act).
type Recordable interface {
	Record() UndoRecord
}

// InFlightRecordable is an optional interface of a Step: the undo to run
// if the process dies while the step is running, before it could return
// its own Undo. A restart that dies mid-job must still be followed by
// stop, restore, start during recovery.
type InFlightRecordable interface {
	InFlightRecord() (UndoRecord, bool)
}

// Journal is the state file of one run, next to the run lock: what a run
// that dies without finishing leaves for `rollout recover`. It is written
// atomically (temp file, fsync, rename) each time a service starts, a step
// starts or pushes an undo, a rollback starts or undoes a step, and a
// service finishes; the run removes it when it ends normally.
type Journal struct {
	RunID       string           `json:"run_id"`
	PID         int              `json:"pid"`
	Plan        string           `json:"plan"`
	PlanFile    string           `json:"plan_file,omitempty"`
	EventsLog   string           `json:"events_log,omitempty"`
	UserManager bool             `json:"user_manager,omitempty"`
	Force       bool             `json:"force,omitempty"`
	Started     time.Time        `json:"started"`
	Updated     time.Time        `json:"updated"`
	Ended       bool             `json:"ended,omitempty"` // the final RUN_* event is being written
	Services    []JournalService `json:"services"`

	// Path is the file the journal was read from or is written to.
	Path string `json:"-"`
}

// JournalService is one service in flight.
type JournalService struct {
	Name   string          `json:"name"`
	Unit   string          `json:"unit"`
	Health *planner.Health `json:"health,omitempty"`
	// Step is the step running now, and InFlight what undoes it when the
	// step can say so before it returns (InFlightRecordable).
	Step        string        `json:"step,omitempty"`
	InFlight    *UndoRecord   `json:"in_flight,omitempty"`
	RollingBack bool          `json:"rolling_back,omitempty"`
	Undos       []JournalUndo `json:"undos"`
}

// JournalUndo is one entry of a service's rollback stack.
type JournalUndo struct {
	UndoRecord
	Describe string `json:"describe"`
	// Reopen is what a Reopener does after the undos below it.
	Reopen string `json:"reopen,omitempty"`
	// Recorded is false for an Undo that is not Recordable.
	Recorded bool `json:"recorded"`
	// Undone: a rollback already ran this Undo (a Reopener's Reopen may
	// still be due), so recovery does not run it again.
	Undone bool `json:"undone,omitempty"`
}

// JournalDir is where the journals of the runs guarded by lockPath live.
func JournalDir(lockPath string) string {
	return filepath.Join(filepath.Dir(lockPath), "runs")
}

// UnfinishedRuns reads the journals in dir, oldest first. A journal exists
// only while its run holds the lock, so whoever holds the lock and still
// finds one knows its run died.
func UnfinishedRuns(dir string) ([]*Journal, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("run journals: %w", err)
	}
	var out []*Journal
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		j, err := ReadJournal(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Started.Before(out[b].Started) })
	return out, nil
}

// ReadJournal reads one journal file.
func ReadJournal(path string) (*Journal, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("run journal: %w", err)
	}
	var j Journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("run journal %s: %w (remove it by hand after checking the services it names)", path, err)
	}
	j.Path = path
	return &j, nil
}

// UnfinishedRunError refuses a run while a run that died is not recovered.
type UnfinishedRunError struct {
	Journal     *Journal
	UserManager bool
}

func (e *UnfinishedRunError) Error() string {
	j := e.Journal
	cmd := "rollout recover"
	if e.UserManager {
		cmd += " --user"
	}
	var names []string
	for _, s := range j.Services {
		names = append(names, s.Name)
	}
	inFlight := "no service in flight"
	if len(names) > 0 {
		inFlight = "in flight: " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("run %s (plan %q, pid %d, started %s) did not finish (%s); run `%s` to roll it back first (journal %s)",
		j.RunID, j.Plan, j.PID, j.Started.Format(time.RFC3339), inFlight, cmd, j.Path)
}

// ErrUnfinishedRun is matched (errors.Is) by *UnfinishedRunError.
var ErrUnfinishedRun = errors.New("an unfinished run must be recovered first")

// Is makes errors.Is(err, ErrUnfinishedRun) true.
func (e *UnfinishedRunError) Is(target error) bool { return target == ErrUnfinishedRun }

// journalWriter keeps a run's journal and writes it on each change. A nil
// writer (no lock path) does nothing.
type journalWriter struct {
	mu  sync.Mutex
	j   Journal
	now func() time.Time
	err error // the first failed write
}

func newJournalWriter(lockPath string, plan *planner.Plan, opts Options) (*journalWriter, error) {
	w := &journalWriter{now: opts.Now, j: Journal{
		RunID:       opts.RunID,
		PID:         os.Getpid(),
		Plan:        plan.Name,
		PlanFile:    opts.PlanFile,
		EventsLog:   opts.EventsLog,
		UserManager: opts.UserManager,
		Force:       opts.Force,
		Started:     opts.Now(),
		Services:    []JournalService{},
		Path:        filepath.Join(JournalDir(lockPath), opts.RunID+".json"),
	}}
	if err := os.MkdirAll(filepath.Dir(w.j.Path), 0o750); err != nil {
		return nil, fmt.Errorf("run journal: %w", err)
	}
	if err := w.writeLocked(); err != nil {
		return nil, err
	}
	return w, nil
}

// update changes the journal under the lock and writes it.
func (w *journalWriter) update(f func(j *Journal)) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f(&w.j)
	if err := w.writeLocked(); err != nil && w.err == nil {
		w.err = err
	}
}

// service applies f to the named service's entry, if it is in flight.
func (w *journalWriter) service(name string, f func(s *JournalService)) {
	w.update(func(j *Journal) {
		for i := range j.Services {
			if j.Services[i].Name == name {
				f(&j.Services[i])
				return
			}
		}
	})
}

func (w *journalWriter) begin(svc *planner.Service) {
	w.update(func(j *Journal) {
		j.Services = append(j.Services, JournalService{Name: svc.Name, Unit: svc.Unit, Health: svc.Health, Undos: []JournalUndo{}})
	})
}

func (w *journalWriter) stepStart(svc *planner.Service, st *planner.Step, step Step) {
	if w == nil {
		return
	}
	var inFlight *UndoRecord
	if r, ok := step.(InFlightRecordable); ok {
		if rec, ok := safeInFlightRecord(r); ok {
			rec.Step = st.Name
			inFlight = &rec
		}
	}
	w.service(svc.Name, func(s *JournalService) { s.Step, s.InFlight = st.Name, inFlight })
}

// stepEnd records the undo the step pushed, if any, in the same write
// that clears the in-flight record, so no moment lacks both.
func (w *journalWriter) stepEnd(svc *planner.Service, e *undoEntry) {
	if w == nil {
		return
	}
	var ju *JournalUndo
	if e != nil {
		ju = &JournalUndo{Describe: describe(e.undo)}
		if ro, ok := e.undo.(Reopener); ok {
			ju.Reopen = describeReopen(ro)
		}
		if r, ok := e.undo.(Recordable); ok {
			if rec, ok := safeRecord(r); ok {
				ju.UndoRecord, ju.Recorded = rec, true
			}
		}
		ju.Step = e.step.Name
	}
	w.service(svc.Name, func(s *JournalService) {
		s.Step, s.InFlight = "", nil
		if ju != nil {
			s.Undos = append(s.Undos, *ju)
		}
	})
}

func (w *journalWriter) rollingBack(svc *planner.Service) {
	w.service(svc.Name, func(s *JournalService) { s.RollingBack, s.Step, s.InFlight = true, "", nil })
}

func (w *journalWriter) undone(svc *planner.Service, k int) {
	w.service(svc.Name, func(s *JournalService) {
		if k >= 0 && k < len(s.Undos) {
			s.Undos[k].Undone = true
		}
	})
}

// end drops a finished service: it is restarted or rolled back, and
// recovery must leave it alone.
func (w *journalWriter) end(svc *planner.Service) {
	w.update(func(j *Journal) {
		for i := range j.Services {
			if j.Services[i].Name == svc.Name {
				j.Services = append(j.Services[:i], j.Services[i+1:]...)
				return
			}
		}
	})
}

func (w *journalWriter) ending() { w.update(func(j *Journal) { j.Ended = true }) }

// remove deletes the journal of a run that ended normally.
func (w *journalWriter) remove() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := os.Remove(w.j.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("run journal: %w", err)
	}
	syncDir(filepath.Dir(w.j.Path))
	if w.err != nil {
		return fmt.Errorf("run journal: some updates were not written: %w", w.err)
	}
	return nil
}

func (w *journalWriter) writeLocked() error {
	w.j.Updated = w.now()
	data, err := json.MarshalIndent(&w.j, "", "  ")
	if err != nil {
		return fmt.Errorf("run journal: %w", err)
	}
	return writeFileAtomic(w.j.Path, append(data, '\n'))
}

// writeFileAtomic writes data to a temporary file beside path, fsyncs it,
// renames it over path and fsyncs the directory: a reader (or a crash)
// sees the old journal or the new one, never half of one.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("run journal: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o640); err != nil {
		return fmt.Errorf("run journal: %w", err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("run journal: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("run journal: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("run journal: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("run journal: %w", err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename or remove in dir durable; a failure only weakens
// durability, so it is ignored.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func safeRecord(r Recordable) (rec UndoRecord, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
		}
	}()
	return r.Record(), true
}

func safeInFlightRecord(r InFlightRecordable) (rec UndoRecord, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
		}
	}()
	return r.InFlightRecord()
}

// RecoverOptions controls Recover.
type RecoverOptions struct {
	// Rebuild turns a record back into an Undo (steps.Recover).
	Rebuild func(UndoRecord) (Undo, error)
	Events  Sink
	Observe func(Event)
	Now     func() time.Time
}

// Recover finishes the rollback of a run that died: for each service the
// journal has in flight it rebuilds the rollback stack (plus the undo of
// the step that was running, when known) and runs the executor's own
// rollback, with the original run id, so the events read as the rest of
// that run: ROLLBACK_START, STEP_* (phase rollback), ROLLBACK_SUCCESS or
// ROLLBACK_FAILED, then RUN_FAILED "recovered". The caller holds the lock
// and removes the journal afterwards (RemoveJournal).
func Recover(ctx context.Context, j *Journal, opts RecoverOptions) (Result, error) {
	if j == nil {
		return Result{}, errors.New("executor: no journal")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ropts := Options{RunID: j.RunID, UserManager: j.UserManager, Force: j.Force, Now: opts.Now, Observe: opts.Observe}
	r := &runner{
		plan: &planner.Plan{Name: j.Plan},
		opts: ropts,
		now:  opts.Now,
		em:   &emitter{sink: opts.Events, observe: opts.Observe, runID: j.RunID, now: opts.Now},
		base: context.WithoutCancel(ctx),
	}
	res := Result{RunID: j.RunID}
	start := r.now()
	for _, js := range j.Services {
		svc := &planner.Service{Name: js.Name, Unit: js.Unit, Health: js.Health}
		stack := recoveredStack(js, opts.Rebuild)
		res.Failed = append(res.Failed, svc.Name)
		if len(stack) == 0 {
			continue
		}
		if r.rollback(svc, stack) {
			res.RolledBack = append(res.RolledBack, svc.Name)
		} else {
			res.RollbackFailed = append(res.RollbackFailed, svc.Name)
		}
	}
	res.Duration = r.now().Sub(start)
	if !j.Ended {
		msg := "recovered"
		if len(res.RollbackFailed) > 0 {
			msg = "recovered; a rollback failed (see ROLLBACK_FAILED)"
		}
		r.em.emit(Event{Event: RunFailed, Plan: j.Plan, Message: msg,
			Error: fmt.Sprintf("the run (pid %d) died; %s rolled back by `rollout recover`", j.PID, plural(len(res.RolledBack), "service")), DurationMS: res.Duration.Milliseconds()})
	}
	return res, r.em.err()
}

// recoveredStack rebuilds a service's rollback stack from its journal.
func recoveredStack(js JournalService, rebuild func(UndoRecord) (Undo, error)) []undoEntry {
	records := js.Undos
	if js.InFlight != nil && !js.RollingBack {
		records = append(records[:len(records):len(records)], JournalUndo{UndoRecord: *js.InFlight, Recorded: true, Describe: "undo of step " + js.InFlight.Step + ", which was running when the run died"})
	}
	stack := make([]undoEntry, 0, len(records))
	for _, ju := range records {
		st := &planner.Step{Name: ju.Step}
		var u Undo
		var err error
		switch {
		case !ju.Recorded:
			err = fmt.Errorf("this undo could not be journaled; do it by hand: %s", ju.Describe)
		case rebuild == nil:
			err = errors.New("no way to rebuild undos")
		default:
			u, err = rebuild(ju.UndoRecord)
		}
		if err != nil || u == nil {
			if err == nil {
				err = fmt.Errorf("undo %q rebuilt as nothing", ju.Kind)
			}
			u = &unrecoverable{desc: ju.Describe, err: err}
		}
		stack = append(stack, undoEntry{undo: u, step: st, undone: ju.Undone})
	}
	return stack
}

// unrecoverable stands for an undo that could not be rebuilt: its rollback
// step fails, so the run ends in ROLLBACK_FAILED with manual commands.
type unrecoverable struct {
	desc string
	err  error
}

func (u *unrecoverable) Describe() string {
	if u.desc == "" {
		return "an undo that cannot be recovered"
	}
	return u.desc
}

func (u *unrecoverable) Undo(context.Context, *Env) error { return u.err }

// RemoveJournal deletes a recovered run's journal.
func RemoveJournal(j *Journal) error {
	if j == nil || j.Path == "" {
		return nil
	}
	if err := os.Remove(j.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("run journal: %w", err)
	}
	syncDir(filepath.Dir(j.Path))
	return nil
}

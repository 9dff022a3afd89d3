package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
// its own Undo. The executor writes it to the journal, durably, before
// the step starts: a restart that dies mid-job must still be followed by
// stop, restore, start during recovery. A step that learns what undoes it
// only while it runs (a start reads the unit's state first; a deploy has
// a snapshot only once it is taken) calls Env.JournalInFlight before it
// changes anything.
type InFlightRecordable interface {
	InFlightRecord(env *Env) (UndoRecord, bool)
}

// Journal is the state of one run that `rollout recover` needs if the run
// dies without finishing. On disk it is an append-only file of JSON lines
// (see journalLine): a header, then the whole state of one service per
// line each time it changes in a way recovery must know, an end line when
// a service is done. Reading replays the lines; the last state of each
// service wins. The run removes the file when it ends normally.
type Journal struct {
	RunID       string    `json:"run_id"`
	PID         int       `json:"pid"`
	Plan        string    `json:"plan"`
	PlanFile    string    `json:"plan_file,omitempty"`
	EventsLog   string    `json:"events_log,omitempty"`
	UserManager bool      `json:"user_manager,omitempty"`
	Force       bool      `json:"force,omitempty"`
	Started     time.Time `json:"started"`
	// Updated is the time of the last record (the file's mtime when read).
	Updated  time.Time        `json:"updated"`
	Ended    bool             `json:"ended,omitempty"` // the final RUN_* event is being written
	Services []JournalService `json:"services"`

	// Path is the file the journal was read from or is written to.
	Path string `json:"-"`
}

// JournalService is one service in flight.
type JournalService struct {
	Name string `json:"name"`
	Unit string `json:"unit"`
	// Host is the host of an instance on one: recovery undoes there.
	Host   *planner.Host   `json:"host,omitempty"`
	Health *planner.Health `json:"health,omitempty"`
	// Step is the step running now, and InFlight what undoes it when the
	// step can say so before it changes anything (InFlightRecordable,
	// Env.JournalInFlight).
	Step        string        `json:"step,omitempty"`
	InFlight    *UndoRecord   `json:"in_flight,omitempty"`
	RollingBack bool          `json:"rolling_back,omitempty"`
	Undos       []JournalUndo `json:"undos"`
	// Procs are the process groups of the commands the running step
	// started: recovery kills them, and undoes nothing of the service
	// while one lives.
	Procs []JournalProc `json:"procs,omitempty"`
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

// journalLine is one line of a journal file: exactly one field is set.
type journalLine struct {
	Run     *Journal        `json:"run,omitempty"`
	Service *JournalService `json:"service,omitempty"`
	End     string          `json:"end,omitempty"`
	Ended   bool            `json:"ended,omitempty"`
}

// journalExt names journal files; ".json" is the whole-file journal of
// earlier versions, still read so that an upgrade does not lose one.
const (
	journalExt       = ".journal"
	legacyJournalExt = ".json"
)

// JournalDir is where the journals of the runs guarded by lockPath live
// when no journal directory is given (Options.JournalDir).
func JournalDir(lockPath string) string {
	return filepath.Join(filepath.Dir(lockPath), "runs")
}

// UnfinishedRuns reads the journals in dirs (duplicates and missing
// directories are fine), oldest first. A journal exists only while its run
// holds the lock, so whoever holds the lock and still finds one knows its
// run died.
func UnfinishedRuns(dirs ...string) ([]*Journal, error) {
	var out []*Journal
	seen := map[string]bool{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		if seen[dir] {
			continue
		}
		seen[dir] = true
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("run journals: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, journalExt) || strings.HasSuffix(name, legacyJournalExt)) {
				continue
			}
			path := filepath.Join(dir, name)
			if journalLive(path) {
				// A run in progress that does not hold the controller's
				// lock (a plan on hosts only): not unfinished.
				continue
			}
			j, err := ReadJournal(path)
			if err != nil {
				return nil, err
			}
			out = append(out, j)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Started.Before(out[b].Started) })
	return out, nil
}

// ReadJournal reads one journal file. A line that does not parse is the
// line a dying run was writing (its write never returned, so the step it
// announced never started) and is skipped; a file without a header is a
// run that died while creating it, before anything changed.
func ReadJournal(path string) (*Journal, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("run journal: %w", err)
	}
	if strings.HasSuffix(path, legacyJournalExt) {
		var j Journal
		if err := json.Unmarshal(data, &j); err != nil {
			return nil, fmt.Errorf("run journal %s: %w (remove it by hand after checking the services it names)", path, err)
		}
		j.Path = path
		return &j, nil
	}
	j := &Journal{RunID: strings.TrimSuffix(filepath.Base(path), journalExt)}
	var order []string
	state := map[string]*JournalService{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l journalLine
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		switch {
		case l.Run != nil:
			*j = *l.Run
		case l.Service != nil:
			s := *l.Service
			if state[s.Name] == nil {
				order = append(order, s.Name)
			}
			state[s.Name] = &s
		case l.End != "":
			delete(state, l.End)
		case l.Ended:
			j.Ended = true
		}
	}
	j.Services = []JournalService{}
	for _, name := range order {
		if s := state[name]; s != nil {
			if s.Undos == nil {
				s.Undos = []JournalUndo{}
			}
			j.Services = append(j.Services, *s)
			delete(state, name) // a service that began twice is listed once
		}
	}
	if fi, err := os.Stat(path); err == nil {
		j.Updated = fi.ModTime()
	}
	j.Path = path
	return j, nil
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

// journalWrites counts the journal's durable (fsynced) writes, for the
// benchmark and its tests.
var journalWrites atomic.Int64

// journalWriter appends to a run's journal file. Each service's state is
// kept by that service's own goroutine (svcJournal) and written as one
// line with one write(2) on an O_APPEND file: no lock is held across a
// write or an fsync, so services in flight at once sync in parallel and
// the kernel folds their fsyncs.
type journalWriter struct {
	f    *os.File
	path string

	mu  sync.Mutex
	err error // the first failed write
}

// newJournalWriter creates the journal of a run in dir, with its header.
func newJournalWriter(dir string, plan *planner.Plan, opts Options) (*journalWriter, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("run journal: %w", err)
	}
	// The journal is written under a hidden name, locked, and only then
	// given its name: a run that does not hold the controller's lock (a
	// plan on hosts only) must never see another live run's journal
	// unlocked and take it for a dead one.
	path := filepath.Join(dir, opts.RunID+journalExt)
	tmp := filepath.Join(dir, "."+opts.RunID+journalExt+".new")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("run journal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("run journal: lock %s: %w", tmp, err)
	}
	w := &journalWriter{f: f, path: tmp}
	head := &Journal{
		RunID:       opts.RunID,
		PID:         os.Getpid(),
		Plan:        plan.Name,
		PlanFile:    opts.PlanFile,
		EventsLog:   opts.EventsLog,
		UserManager: opts.UserManager,
		Force:       opts.Force,
		Started:     opts.Now(),
		Services:    []JournalService{},
	}
	if err := w.append(journalLine{Run: head}, true); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("run journal: %w", err)
	}
	w.path = path
	// The file's name must be durable too, or a crash could leave the
	// records of a file that no directory names.
	syncDir(dir)
	return w, nil
}

// journalLive says whether the run that writes the journal at path is
// alive: a run holds a lock on its journal for as long as it runs (and
// recover on the journal it recovers); the kernel drops it when the
// process dies, however it dies.
func journalLive(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	return false
}

// openJournalWriter reopens a dead run's journal so that recovery records
// its progress in it. A line torn by the kill is ended first, so the next
// record starts on a line of its own.
func openJournalWriter(path string) (*journalWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("run journal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("run journal %s: its run is still alive (it holds the journal's lock): it is not recovered", path)
		}
		return nil, fmt.Errorf("run journal: lock %s: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			if _, err := f.Write([]byte("\n")); err != nil {
				f.Close()
				return nil, fmt.Errorf("run journal: %w", err)
			}
		}
	}
	return &journalWriter{f: f, path: path}, nil
}

// append writes one line; with sync it is durable when append returns.
func (w *journalWriter) append(l journalLine, sync bool) error {
	data, err := json.Marshal(l)
	if err != nil {
		return w.fail(fmt.Errorf("run journal: %w", err))
	}
	data = append(data, '\n')
	if _, err := w.f.Write(data); err != nil {
		return w.fail(fmt.Errorf("run journal: %w", err))
	}
	if !sync {
		return nil
	}
	journalWrites.Add(1)
	if err := fdatasync(w.f); err != nil {
		return w.fail(fmt.Errorf("run journal: %w", err))
	}
	return nil
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func (w *journalWriter) fail(err error) error {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	return err
}

// ending notes that the final RUN_* event is being written: a crash after
// it leaves a journal that recovery removes without a second final event.
func (w *journalWriter) ending() {
	if w != nil {
		_ = w.append(journalLine{Ended: true}, true)
	}
}

// remove deletes the journal of a run that ended normally.
func (w *journalWriter) remove() error {
	if w == nil {
		return nil
	}
	// Removed before it is closed (which drops its lock): no other run
	// sees it unlocked, as a dead run's.
	err := os.Remove(w.path)
	w.f.Close()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("run journal: %w", err)
	}
	syncDir(filepath.Dir(w.path))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return fmt.Errorf("run journal: some updates were not written: %w", w.err)
	}
	return nil
}

func (w *journalWriter) close() {
	if w != nil {
		w.f.Close()
	}
}

// svcJournal is one service's part of the journal, owned by the goroutine
// that restarts (or recovers) the service. It writes only what recovery
// needs, when it needs it:
//   - nothing for a step that changes nothing (no undo, no in-flight undo);
//   - the in-flight undo of a step before the step starts, together with
//     whatever earlier steps pushed (begin + step start in one write);
//   - an undo a step pushed at its end only when no write covers it: the
//     next step's start writes it (step end + step start), or the service's
//     end or rollback does (step end + end), or the in-flight undo already
//     written is the same record;
//   - each undo a rollback did, so a recovery never runs it twice.
type svcJournal struct {
	w  *journalWriter
	js JournalService
	// written: a line of this service is in the file, so its end must be.
	written bool
	// owed: js holds an undo the file lacks; the next step's start must
	// write before the step may change anything.
	owed bool
}

// service starts the journal of one service, in memory only.
func (w *journalWriter) service(svc *planner.Service) *svcJournal {
	if w == nil {
		return nil
	}
	return &svcJournal{w: w, js: JournalService{Name: svc.Name, Unit: svc.Unit, Host: svc.Host, Health: svc.Health, Undos: []JournalUndo{}}}
}

// resume continues the journal of a service a dead run left in flight.
func (w *journalWriter) resume(js JournalService) *svcJournal {
	if w == nil {
		return nil
	}
	js.Undos = append([]JournalUndo{}, js.Undos...)
	return &svcJournal{w: w, js: js, written: true}
}

func (s *svcJournal) flush(sync bool) error {
	js := s.js
	err := s.w.append(journalLine{Service: &js}, sync)
	s.written = true
	if sync && err == nil {
		s.owed = false
	}
	return err
}

// stepStart notes the step that starts and writes the journal when the
// step has an in-flight undo or an earlier undo is owed.
func (s *svcJournal) stepStart(st *planner.Step, step Step, env *Env) {
	if s == nil {
		return
	}
	s.js.Step, s.js.InFlight, s.js.Procs = st.Name, nil, nil
	if r, ok := step.(InFlightRecordable); ok {
		if rec, ok := safeInFlightRecord(r, env); ok {
			rec.Step = st.Name
			s.js.InFlight = &rec
		}
	}
	if s.js.InFlight != nil || s.owed {
		_ = s.flush(true)
	}
}

// setInFlight replaces the running step's in-flight undo, durably.
func (s *svcJournal) setInFlight(step string, rec UndoRecord) error {
	if s == nil {
		return nil
	}
	rec.Step = step
	s.js.InFlight = &rec
	return s.flush(true)
}

// procStarted records a child's process group. It is written without an
// fsync: a kill -9 of rollout leaves the write in the page cache, and a
// power loss leaves no process to kill.
func (s *svcJournal) procStarted(step string, pid int) {
	if s == nil {
		return
	}
	s.js.Procs = append(s.js.Procs, processOf(step, pid))
	_ = s.flush(false)
}

// stepEnd records the undo the step pushed (e may be nil). nextWrites
// says that the service's next journal action (the next step's start, its
// rollback, its end) writes anyway, so an owed undo may wait for it: no
// step runs in between.
func (s *svcJournal) stepEnd(e *undoEntry, nextWrites bool) {
	if s == nil {
		return
	}
	inFlight := s.js.InFlight
	s.js.Step, s.js.InFlight, s.js.Procs = "", nil, nil
	if e == nil {
		return
	}
	ju := journalUndo(e)
	s.js.Undos = append(s.js.Undos, ju)
	if inFlight != nil && ju.Recorded && sameRecord(*inFlight, ju.UndoRecord) {
		// Recovery would rebuild the same stack from the in-flight
		// record already in the file.
		return
	}
	s.owed = true
	if !nextWrites {
		_ = s.flush(true)
	}
}

func sameRecord(a, b UndoRecord) bool {
	return a.Kind == b.Kind && a.Step == b.Step && reflect.DeepEqual(a.Args, b.Args)
}

func journalUndo(e *undoEntry) JournalUndo {
	ju := JournalUndo{Describe: describe(e.undo)}
	if ro, ok := e.undo.(Reopener); ok {
		ju.Reopen = describeReopen(ro)
	}
	if r, ok := e.undo.(Recordable); ok {
		if rec, ok := safeRecord(r); ok {
			ju.UndoRecord, ju.Recorded = rec, true
		}
	}
	ju.Step = e.step.Name
	return ju
}

// rollingBack marks the service's rollback as started. The in-flight undo,
// if any, becomes an entry of the stack, so that the undone marks of a
// recovery index the stack it runs.
func (s *svcJournal) rollingBack() {
	if s == nil {
		return
	}
	if s.js.InFlight != nil {
		s.js.Undos = append(s.js.Undos, JournalUndo{UndoRecord: *s.js.InFlight, Recorded: true, Describe: inFlightDescribe(*s.js.InFlight)})
	}
	if s.js.RollingBack && s.js.InFlight == nil && !s.owed {
		return
	}
	s.js.RollingBack, s.js.Step, s.js.InFlight, s.js.Procs = true, "", nil, nil
	_ = s.flush(true)
}

func inFlightDescribe(rec UndoRecord) string {
	return "undo of step " + rec.Step + ", which was running when the run died"
}

// undone records that the rollback ran the k-th undo, durably: a restored
// snapshot is removed once this is written, so it is never restored twice.
func (s *svcJournal) undone(k int) {
	if s == nil || k < 0 || k >= len(s.js.Undos) {
		return
	}
	s.js.Undos[k].Undone = true
	_ = s.flush(true)
}

// end drops a finished service (restarted or rolled back): recovery must
// leave it alone. A service never written needs no end.
func (s *svcJournal) end() {
	if s == nil || !s.written {
		return
	}
	_ = s.w.append(journalLine{End: s.js.Name}, true)
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

func safeInFlightRecord(r InFlightRecordable, env *Env) (rec UndoRecord, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
		}
	}()
	return r.InFlightRecord(env)
}

// RecoverOptions controls Recover.
type RecoverOptions struct {
	// Rebuild turns a record back into an Undo (steps.Recover).
	Rebuild func(UndoRecord) (Undo, error)
	// RebuildOn, when set, rebuilds the undos of an instance on a host
	// (steps.RecoverOn); Rebuild is used for the others.
	RebuildOn func(UndoRecord, *planner.Host) (Undo, error)
	Events    Sink
	Observe   func(Event)
	Now       func() time.Time
	// Stop, once closed, lets the service being rolled back finish and
	// starts no other (the first interrupt); Abort stops after the undo
	// running now (the second). Either way the journal keeps what is left
	// and Result.Interrupted is set: a later recover finishes it.
	Stop, Abort <-chan struct{}
	// ProcessWait bounds the wait for a dead run's children to die after
	// SIGKILL (default 10s).
	ProcessWait time.Duration
}

// Recover finishes the rollback of a run that died: for each service the
// journal has in flight it first kills the process groups the run's steps
// had started (and undoes nothing while one lives), then rebuilds the
// rollback stack (plus the undo of the step that was running, when known)
// and runs the executor's own rollback, with the original run id, so the
// events read as the rest of that run: ROLLBACK_START, STEP_* (phase
// rollback), ROLLBACK_SUCCESS or ROLLBACK_FAILED, then RUN_FAILED
// "recovered". Each undo done is written to the journal before the next
// starts, so an interrupted recovery is resumed, not repeated. The caller
// holds the lock and removes the journal afterwards (RemoveJournal) unless
// Result.Interrupted.
func Recover(ctx context.Context, j *Journal, opts RecoverOptions) (Result, error) {
	if j == nil {
		return Result{}, errors.New("executor: no journal")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProcessWait <= 0 {
		opts.ProcessWait = 10 * time.Second
	}
	var jw *journalWriter
	if j.Path != "" && !strings.HasSuffix(j.Path, legacyJournalExt) {
		var err error
		if jw, err = openJournalWriter(j.Path); err != nil {
			return Result{}, err
		}
		defer jw.close()
	}
	ropts := Options{RunID: j.RunID, UserManager: j.UserManager, Force: j.Force, Now: opts.Now, Observe: opts.Observe}
	r := &runner{
		plan: &planner.Plan{Name: j.Plan},
		opts: ropts,
		now:  opts.Now,
		em:   &emitter{sink: opts.Events, observe: opts.Observe, runID: j.RunID, now: opts.Now, hosts: journalHosts(j)},
		base: context.WithoutCancel(ctx),
	}
	res := Result{RunID: j.RunID}
	start := r.now()
	for _, js := range j.Services {
		if closed(opts.Stop) || closed(opts.Abort) {
			res.Interrupted = true
			break
		}
		svc := &planner.Service{Name: js.Name, Unit: js.Unit, Host: js.Host, Health: js.Health}
		sj := jw.resume(js)
		res.Failed = append(res.Failed, svc.Name)
		if alive := killProcesses(js.Procs, opts.ProcessWait); len(alive) > 0 {
			// Undoing a step whose command still runs would race it (a
			// migration's rollback landing before the migration).
			r.em.emit(Event{
				Event:   RollbackFailed,
				Service: svc.Name,
				Unit:    svc.Unit,
				Error:   fmt.Sprintf("processes of the dead run still run after SIGKILL: %s; nothing was undone", strings.Join(alive, ", ")),
				Message: fmt.Sprintf("Stop them (kill -KILL -- -PGID), then run `rollout recover%s` again.", map[bool]string{true: " --user"}[j.UserManager]),
			})
			res.RollbackFailed = append(res.RollbackFailed, svc.Name)
			res.Interrupted = true // the journal stays for the next recover
			continue
		}
		rebuild := opts.Rebuild
		if js.Host != nil && opts.RebuildOn != nil {
			host := js.Host
			rebuild = func(rec UndoRecord) (Undo, error) { return opts.RebuildOn(rec, host) }
		}
		stack := recoveredStack(js, rebuild)
		if len(stack) == 0 {
			sj.end()
			continue
		}
		sj.rollingBack()
		switch r.rollback(svc, stack, sj, opts.Abort) {
		case rollbackDone:
			res.RolledBack = append(res.RolledBack, svc.Name)
			sj.end()
		case rollbackFailed:
			res.RollbackFailed = append(res.RollbackFailed, svc.Name)
			sj.end()
		case rollbackInterrupted:
			res.Interrupted = true
		}
	}
	res.Duration = r.now().Sub(start)
	res.Irreversible = r.irreversibleSteps()
	if !j.Ended && !res.Interrupted {
		msg := "recovered"
		if len(res.RollbackFailed) > 0 {
			msg = "recovered; a rollback failed (see ROLLBACK_FAILED)"
		}
		r.em.emit(Event{Event: RunFailed, Plan: j.Plan, Message: msg,
			Error: fmt.Sprintf("the run (pid %d) died; %s rolled back by `rollout recover`", j.PID, plural(len(res.RolledBack), "service")), DurationMS: res.Duration.Milliseconds()})
	}
	var jerr error
	if jw != nil {
		jw.mu.Lock()
		jerr = jw.err
		jw.mu.Unlock()
	}
	return res, errors.Join(r.em.err(), jerr)
}

func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// recoveredStack rebuilds a service's rollback stack from its journal.
func recoveredStack(js JournalService, rebuild func(UndoRecord) (Undo, error)) []undoEntry {
	records := js.Undos
	if js.InFlight != nil && !js.RollingBack {
		records = append(records[:len(records):len(records)], JournalUndo{UndoRecord: *js.InFlight, Recorded: true, Describe: inFlightDescribe(*js.InFlight)})
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

// RemoveJournal deletes a recovered run's journal, and its directory when
// that is left empty.
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

func journalHosts(j *Journal) map[string]string {
	m := map[string]string{}
	for _, s := range j.Services {
		if s.Host != nil {
			m[s.Name] = s.Host.Name
		}
	}
	return m
}

package executor

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// FileSink appends events to a JSONL file, one line per event. Each line is
// written with a single write(2) on a file opened with O_APPEND, under a
// mutex, so lines from concurrent services never interleave and a crash can
// at worst lose the last line, never corrupt the earlier ones.
type FileSink struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// OpenEventLog opens path for appending, creating it (mode 0640, before the
// umask) and its parent directories (0750) when missing. It never truncates.
func OpenEventLog(path string) (*FileSink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("events log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("events log: %w", err)
	}
	if err := terminateTornLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("events log %s: %w", path, err)
	}
	return &FileSink{f: f, path: path}, nil
}

// terminateTornLine appends a newline when the file does not end with one.
// One write(2) per line keeps lines from interleaving, but the kernel may
// stop a write that spans pages when the writer is killed, leaving a torn
// last line; ending it here keeps the next run's first event on a line of
// its own, so only the torn line is lost (readers skip and count it).
func terminateTornLine(f *os.File) error {
	info, err := f.Stat()
	if err != nil || info.Size() == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, info.Size()-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	_, err = f.Write([]byte{'\n'})
	return err
}

// Path is the file the sink appends to.
func (s *FileSink) Path() string { return s.path }

// Write appends ev as one line.
func (s *FileSink) Write(ev Event) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("events log %s: %w", s.path, err)
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("events log %s: closed", s.path)
	}
	if _, err := s.f.Write(line); err != nil {
		return fmt.Errorf("events log: %w", err)
	}
	return nil
}

// Close closes the file; later writes fail.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// DefaultEventLogPath is where events go when neither the plan
// (defaults.events_log) nor --events says: /var/log/rollout/events.jsonl
// for root, else $XDG_STATE_HOME/rollout/events.jsonl
// (~/.local/state/rollout/events.jsonl when unset).
func DefaultEventLogPath() string {
	return eventLogPath(os.Geteuid() == 0)
}

func eventLogPath(root bool) string {
	if root {
		return "/var/log/rollout/events.jsonl"
	}
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "rollout", "events.jsonl")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "rollout", "events.jsonl")
	}
	return filepath.Join("/tmp", "rollout-"+strconv.Itoa(os.Getuid()), "events.jsonl")
}

// newRunID returns "YYYYMMDDTHHMMSSZ-<6 hex>": sortable by start time, and
// NewRunID makes a run id (Options.RunID) for a run starting at now,
// unique enough for runs started in the same second.
func NewRunID(now time.Time) string { return newRunID(now) }

// unique enough for runs started in the same second.
func newRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// emitter stamps events with the run id and time and hands them to the sink
// and the observer, in one order, from any goroutine.
type emitter struct {
	mu      sync.Mutex
	sink    Sink
	observe func(Event)
	runID   string
	now     func() time.Time
	// hosts maps an instance's name to its host, so that every event
	// about an instance on a host says which host.
	hosts map[string]string
	// instances maps an instance of a template unit to its instance name.
	instances map[string]string

	written  int
	lost     int
	firstErr error
}

// emit records ev in the events log and shows it to the observer. A failed
// write does not stop the run: it is counted and reported by err.
func (e *emitter) emit(ev Event) {
	ev.RunID = e.runID
	e.addHost(&ev)
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sink != nil {
		if err := e.sink.Write(ev); err != nil {
			e.lost++
			if e.firstErr == nil {
				e.firstErr = err
			}
		} else {
			e.written++
		}
	}
	if e.observe != nil {
		e.observe(ev)
	}
}

// note shows ev to the observer only (step output, attempts, notes).
func (e *emitter) note(ev Event) {
	if e.observe == nil {
		return
	}
	e.addHost(&ev)
	ev.RunID = e.runID
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.observe(ev)
}

// err says whether events were lost.
func (e *emitter) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lost == 0 {
		return nil
	}
	return fmt.Errorf("events log: %d of %d events were lost: %w", e.lost, e.lost+e.written, e.firstErr)
}

// firstError is the first failed write, or nil.
func (e *emitter) firstError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.firstErr
}

func (e *emitter) addHost(ev *Event) {
	if ev.Host == "" && ev.Service != "" {
		ev.Host = e.hosts[ev.Service]
	}
	if ev.Instance == "" && ev.Service != "" {
		ev.Instance = e.instances[ev.Service]
	}
}

// templateInstances maps each instance of a template unit in plan to its
// instance name.
func templateInstances(plan *planner.Plan) map[string]string {
	var m map[string]string
	for _, svc := range plan.Services {
		if svc.Instance != "" {
			if m == nil {
				m = make(map[string]string)
			}
			m[svc.Name] = svc.Instance
		}
	}
	return m
}

// instanceHosts maps each instance of plan that runs on a host to the
// host's name.
func instanceHosts(plan *planner.Plan) map[string]string {
	var m map[string]string
	for _, svc := range plan.Services {
		if h := svc.HostName(); h != "" {
			if m == nil {
				m = make(map[string]string)
			}
			m[svc.Name] = h
		}
	}
	return m
}

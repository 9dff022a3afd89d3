package executor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"time"
)

// RunSummary is one run as read back from the events log.
type RunSummary struct {
	RunID      string    `json:"run_id"`
	Plan       string    `json:"plan,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	Outcome    string    `json:"outcome"` // succeeded, failed, rollback failed, unfinished
	Restarted  []string  `json:"restarted"`
	Failed     []string  `json:"failed"`
	RolledBack []string  `json:"rolled_back"`
	// RollbackFailed services need a person.
	RollbackFailed []string `json:"rollback_failed"`
	Skipped        []string `json:"skipped"`
	// Canaries says what became of each canary phase: "api promoted by
	// alice", "api FAILED: ...".
	Canaries []string `json:"canaries,omitempty"`
	// NotifyFailed counts the notifications that were not delivered.
	NotifyFailed int `json:"notify_failed,omitempty"`
	// Irreversible maps a rolled-back service to the steps its rollback
	// could not undo (Event.Irreversible).
	Irreversible map[string][]string `json:"irreversible,omitempty"`
	Events       []Event             `json:"-"`
}

// Duration is how long the run took, or how long it ran before its last
// event when it never finished (a crash).
func (s RunSummary) Duration() time.Duration {
	end := s.End
	if end.IsZero() && len(s.Events) > 0 {
		end = s.Events[len(s.Events)-1].Time
	}
	return end.Sub(s.Start)
}

// ReadEvents reads a JSONL events log. A line that is not a JSON event (the
// torn last line of a killed run, say) is counted in bad and skipped, so
// one bad line never hides the history.
func ReadEvents(r io.Reader) (events []Event, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var e Event
		if json.Unmarshal(line, &e) != nil || e.Event == "" {
			bad++
			continue
		}
		events = append(events, e)
	}
	return events, bad, sc.Err()
}

// Summarize groups events by run, in the order runs started.
func Summarize(events []Event) []RunSummary {
	index := map[string]int{}
	var runs []RunSummary
	for _, e := range events {
		i, ok := index[e.RunID]
		if !ok {
			i = len(runs)
			index[e.RunID] = i
			runs = append(runs, RunSummary{
				RunID: e.RunID, Start: e.Time, Outcome: "unfinished",
				Restarted: []string{}, Failed: []string{}, RolledBack: []string{},
				RollbackFailed: []string{}, Skipped: []string{},
			})
		}
		s := &runs[i]
		s.Events = append(s.Events, e)
		switch e.Event {
		case RunStart:
			s.Plan, s.Start = e.Plan, e.Time
		case RunSuccess:
			s.End, s.Outcome = e.Time, "succeeded"
		case RunFailed:
			s.End, s.Outcome = e.Time, "failed"
		case ServiceRestartSuccess:
			s.Restarted = append(s.Restarted, e.Service)
		case ServiceRestartFailed:
			// A canary that restarted well and was rolled back with its
			// canary is failed, not restarted.
			s.Restarted = slices.DeleteFunc(s.Restarted, func(n string) bool { return n == e.Service })
			s.Failed = append(s.Failed, e.Service)
		case CanaryPromoted:
			s.Canaries = append(s.Canaries, e.Service+" "+e.Message)
		case CanaryFailed:
			s.Canaries = append(s.Canaries, e.Service+" FAILED: "+e.Error)
		case RollbackSuccess:
			s.RolledBack = append(s.RolledBack, e.Service)
			s.noteIrreversible(e)
		case RollbackFailed:
			s.RollbackFailed = append(s.RollbackFailed, e.Service)
			s.noteIrreversible(e)
		case ServiceSkipped:
			s.Skipped = append(s.Skipped, e.Service)
		case NotifyFailed:
			s.NotifyFailed++
		}
	}
	for i := range runs {
		if len(runs[i].RollbackFailed) > 0 {
			runs[i].Outcome = "rollback failed"
		}
	}
	sort.SliceStable(runs, func(a, b int) bool { return runs[a].Start.Before(runs[b].Start) })
	return runs
}

func (s *RunSummary) noteIrreversible(e Event) {
	if len(e.Irreversible) == 0 {
		return
	}
	if s.Irreversible == nil {
		s.Irreversible = map[string][]string{}
	}
	s.Irreversible[e.Service] = e.Irreversible
}

// What a run learns from the runs before it: how long each service took
// to restart, to rank services whose place in the plan is the same (as
// ninja ranks a build's edges by its log of earlier builds). Only the
// log's last historyTail bytes are read, and only the durations of the
// last historyRuns successful restarts of each service count, so that a
// platform that changed is learned again within a few runs and a
// years-long log costs what a short one does.
const (
	historyTail = 1 << 20
	historyRuns = 5
)

// learned is what earlier runs in the events log say: the shortest of
// each service's last historyRuns successful restarts, and of each of
// its steps' last historyRuns successes. The shortest, because waiting
// behind other services' restarts (systemd runs a burst of jobs one after
// another) only adds to a duration: the shortest is the closest to what
// the service itself needs, and a service that queued last in one run is
// not ranked first in the next for that alone (with the median, it was,
// and last again in the run after).
type learned struct {
	service map[string]time.Duration
	step    map[stepKey]time.Duration
}

type stepKey struct{ service, step string }

// durationEvent is what readLearned takes from an events log line.
type durationEvent struct {
	Event      string `json:"event"`
	Service    string `json:"service"`
	Step       string `json:"step"`
	Phase      string `json:"phase"`
	DurationMS int64  `json:"duration_ms"`
}

// durationFields reads the durationEvent of an events log line that is a
// STEP_SUCCESS or a SERVICE_RESTART_SUCCESS (ok false for any other, and
// for a torn line). A line without a backslash (no escaped character
// anywhere) is read by looking for each key: decoding the JSON of every
// such line made a full 1 MB tail cost 20 ms instead of 7
// (BenchmarkReadLearned), before the run's first restart; a line with a
// backslash is decoded.
func durationFields(line []byte) (durationEvent, bool) {
	var e durationEvent
	// The event comes third on a line rollout wrote, and most lines are
	// not a success: one short search rejects them.
	i := bytes.Index(line, keyEvent)
	if i < 0 {
		return e, false
	}
	rest := line[i+len(keyEvent):]
	if !bytes.HasPrefix(rest, successStep) && !bytes.HasPrefix(rest, successService) {
		return e, false
	}
	if !bytes.HasSuffix(line, []byte("}")) {
		return e, false // torn
	}
	if bytes.IndexByte(line, '\\') >= 0 {
		return e, json.Unmarshal(line, &e) == nil
	}
	str := func(k []byte) string {
		i := bytes.Index(rest, k)
		if i < 0 {
			return ""
		}
		v := rest[i+len(k):]
		if j := bytes.IndexByte(v, '"'); j >= 0 {
			return string(v[:j])
		}
		return ""
	}
	e.Event = string(rest[:bytes.IndexByte(rest, '"')])
	e.Service, e.Step, e.Phase = str(keyService), str(keyStep), str(keyPhase)
	i = bytes.Index(rest, keyDuration)
	if i < 0 {
		return e, false
	}
	v := rest[i+len(keyDuration):]
	j := 0
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(v[:j]), 10, 64)
	if err != nil {
		return e, false
	}
	e.DurationMS = n
	return e, true
}

var (
	keyEvent    = []byte(`"event":"`)
	keyService  = []byte(`"service":"`)
	keyStep     = []byte(`"step":"`)
	keyPhase    = []byte(`"phase":"`)
	keyDuration = []byte(`"duration_ms":`)

	successStep    = []byte(StepSuccess + `"`)
	successService = []byte(ServiceRestartSuccess + `"`)
)

// readLearned reads what the events log at path has learned, from its
// SERVICE_RESTART_SUCCESS and STEP_SUCCESS events (a rollback's steps do
// not count). A missing or unreadable log is no history.
func readLearned(path string) learned {
	out := learned{service: map[string]time.Duration{}, step: map[stepKey]time.Duration{}}
	if path == "" {
		return out
	}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return out
	}
	skipFirst := false
	if off := st.Size() - historyTail; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return out
		}
		skipFirst = true // it starts mid-line
	}
	services := map[string][]time.Duration{}
	steps := map[stepKey][]time.Duration{}
	keep := func(ds []time.Duration, d time.Duration) []time.Duration {
		ds = append(ds, d)
		if len(ds) > historyRuns {
			ds = ds[1:]
		}
		return ds
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		if skipFirst {
			skipFirst = false
			continue
		}
		e, ok := durationFields(sc.Bytes())
		if !ok || e.Service == "" {
			continue
		}
		d := time.Duration(e.DurationMS) * time.Millisecond
		switch {
		case e.Event == ServiceRestartSuccess:
			services[e.Service] = keep(services[e.Service], d)
		case e.Event == StepSuccess && e.Step != "" && e.Phase == "":
			k := stepKey{e.Service, e.Step}
			steps[k] = keep(steps[k], d)
		}
	}
	for name, ds := range services {
		out.service[name] = slices.Min(ds)
	}
	for k, ds := range steps {
		out.step[k] = slices.Min(ds)
	}
	return out
}

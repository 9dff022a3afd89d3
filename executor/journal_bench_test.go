package executor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rollout-sh/rollout/planner"
)

// benchPipeline is the canned api pipeline's shape: a read-only check, a
// backup, a deploy, a migration, a restart, two read-only checks.
var benchPipeline = []string{"precheck", "backup", "deploy", "migrate", "restart", "verify", "settle"}

// benchBuild builds steps that do nothing but return the undos the real
// steps return (and say them in advance where the real steps do: deploy,
// migrate, restart), so the run's cost is the executor's own: events and
// the journal.
func benchBuild(rec *recorder) Builder {
	return func(svc *planner.Service, st *planner.Step) (Step, error) {
		key := svc.Name + "/" + st.Name
		undo := &recordedUndo{fakeUndo{name: st.Name, rec: rec}}
		switch st.Name {
		case "backup":
			return fakeStep{key: key, do: returning(undo, nil)}, nil
		case "deploy", "migrate", "restart":
			return announcedStep{fakeStep{key: key, do: returning(undo, nil)}, undo.Record()}, nil
		}
		return fakeStep{key: key}, nil
	}
}

// announcedStep is a step whose in-flight undo is the undo it returns.
type announcedStep struct {
	fakeStep
	rec UndoRecord
}

func (s announcedStep) InFlightRecord(*Env) (UndoRecord, bool) { return s.rec, true }

// BenchmarkJournal runs 30 services at once through the api pipeline with
// the crash journal on disk (the test's temporary directory), as one wave
// of the 90-service benchmark does. It reports the journal's writes (each
// one fsynced) per service.
func BenchmarkJournal(b *testing.B) {
	const n = 30
	var defs []string
	for i := range n {
		defs = append(defs, fmt.Sprintf("s%02d", i))
	}
	sp := specs(defs...)
	for i := range sp {
		sp[i].steps = benchPipeline
	}
	plan := makePlan(sp...)
	dir := b.TempDir()
	rec := &recorder{}
	before := journalWrites.Load()
	b.ResetTimer()
	for i := range b.N {
		res, err := Run(context.Background(), plan, Options{
			Build:    benchBuild(rec),
			LockPath: filepath.Join(dir, "lock"),
			RunID:    fmt.Sprintf("bench-%d", i),
		})
		if err != nil || len(res.Succeeded) != n {
			b.Fatalf("run: %+v, %v", res, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(journalWrites.Load()-before)/float64(b.N*n), "writes/service")
}

// BenchmarkReadLearned reads a full historyTail (1 MB, the most a run
// reads) of 90-service runs: what a run spends on its history, beside
// preflight.
func BenchmarkReadLearned(b *testing.B) {
	path := filepath.Join(b.TempDir(), "events.jsonl")
	var buf bytes.Buffer
	for run := 0; buf.Len() < historyTail; run++ {
		for i := range 90 {
			svc := fmt.Sprintf("l%d-%02d", i/30+1, i%30+1)
			for _, step := range []string{"restart", "verify", "settle"} {
				fmt.Fprintf(&buf, `{"time":"2026-12-01T10:00:00Z","run_id":"r%d","event":"STEP_START","service":%q,"unit":"b-%s.service","step":%q,"duration_ms":0}`+"\n", run, svc, svc, step)
				fmt.Fprintf(&buf, `{"time":"2026-12-01T10:00:00Z","run_id":"r%d","event":"STEP_SUCCESS","service":%q,"unit":"b-%s.service","step":%q,"duration_ms":%d}`+"\n", run, svc, svc, step, 100+i)
			}
			fmt.Fprintf(&buf, `{"time":"2026-12-01T10:00:00Z","run_id":"r%d","event":"SERVICE_RESTART_SUCCESS","service":%q,"unit":"b-%s.service","duration_ms":%d}`+"\n", run, svc, svc, 400+i)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if l := readLearned(path); len(l.service) != 90 {
			b.Fatalf("learned %d services, want 90", len(l.service))
		}
	}
}

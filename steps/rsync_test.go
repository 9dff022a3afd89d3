package steps

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// writeTree creates files (path → content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ageTree sets every file under dir an hour back, so that rsync's quick
// check (size and mtime) sees files rewritten within the same second as
// changed, as a real deploy's files are.
func ageTree(t *testing.T, dir string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readTree returns every regular file under dir as path → content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rsyncArgs(from, to string, exclude []string, del *bool) map[string]cty.Value {
	args := map[string]cty.Value{
		"from":    cty.StringVal(from),
		"to":      cty.StringVal(to),
		"exclude": cty.NullVal(cty.List(cty.String)),
		"delete":  cty.NullVal(cty.Bool),
	}
	if exclude != nil {
		var vs []cty.Value
		for _, x := range exclude {
			vs = append(vs, cty.StringVal(x))
		}
		args["exclude"] = cty.ListVal(vs)
	}
	if del != nil {
		args["delete"] = cty.BoolVal(*del)
	}
	return args
}

func equalTrees(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestRsyncDeployAndUndo(t *testing.T) {
	no := false
	old := map[string]string{"app.js": "v1", "lib/util.js": "u1", "stale.js": "s", ".env": "secret"}
	release := map[string]string{"app.js": "v2", "lib/util.js": "u1", "lib/new.js": "n", ".env": "wrong"}
	tests := []struct {
		name    string
		exclude []string
		del     *bool
		want    map[string]string // `to` after the deploy
	}{
		{"mirror with delete", nil, nil, map[string]string{"app.js": "v2", "lib/util.js": "u1", "lib/new.js": "n", ".env": "wrong"}},
		{"exclude keeps a file", []string{".env"}, nil, map[string]string{"app.js": "v2", "lib/util.js": "u1", "lib/new.js": "n", ".env": "secret"}},
		{"no delete keeps stale files", nil, &no, map[string]string{"app.js": "v2", "lib/util.js": "u1", "lib/new.js": "n", "stale.js": "s", ".env": "wrong"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			from, to := filepath.Join(base, "release"), filepath.Join(base, "app")
			writeTree(t, from, release)
			writeTree(t, to, old)
			ageTree(t, to)
			env := newTestEnv(testService())
			ctx := context.Background()
			step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRsync, Args: rsyncArgs(from, to, tt.exclude, tt.del)})
			undo, err := step.Do(ctx, &env.Env)
			if err != nil {
				t.Fatalf("Do: %v\n%s", err, env.output())
			}
			if got := readTree(t, to); !equalTrees(got, tt.want) {
				t.Fatalf("after deploy: %v, want %v", got, tt.want)
			}
			snap := filepath.Join(base, ".app.rollout-snapshot-run1")
			// Excluded paths are not copied into the snapshot: the
			// deploy leaves them alone, and so does the restore.
			wantSnap := map[string]string{}
			for k, v := range old {
				if !slices.Contains(tt.exclude, k) {
					wantSnap[k] = v
				}
			}
			if got := readTree(t, snap); !equalTrees(got, wantSnap) {
				t.Fatalf("snapshot = %v, want %v", got, wantSnap)
			}
			if !strings.Contains(undo.Describe(), to) {
				t.Errorf("Describe = %q, want it to name %s", undo.Describe(), to)
			}
			if err := undo.Undo(ctx, &env.Env); err != nil {
				t.Fatalf("Undo: %v", err)
			}
			if got := readTree(t, to); !equalTrees(got, old) {
				t.Errorf("after undo: %v, want %v", keys(got), keys(old))
			}
			// The snapshot stays until the executor has journaled the
			// undo as done and discards it.
			if _, err := os.Stat(snap); err != nil {
				t.Errorf("snapshot gone after undo, before commit: %v", err)
			}
			if err := undo.(executor.Discarder).Discard(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(snap); !os.IsNotExist(err) {
				t.Errorf("snapshot left after discard: %v", err)
			}
		})
	}
}

func TestRsyncCommitRemovesSnapshot(t *testing.T) {
	base := t.TempDir()
	from, to := filepath.Join(base, "release"), filepath.Join(base, "app")
	writeTree(t, from, map[string]string{"a": "2"})
	writeTree(t, to, map[string]string{"a": "1"})
	ageTree(t, to)
	env := newTestEnv(testService())
	step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRsync, Args: rsyncArgs(from, to, nil, nil)})
	undo, err := step.Do(context.Background(), &env.Env)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := undo.(interface{ Commit(context.Context) error })
	if !ok {
		t.Fatalf("rsync undo %T has no Commit", undo)
	}
	if err := c.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 2 {
		t.Errorf("%d entries beside the target after Commit, want 2 (release, app)", len(entries))
	}
	if got := readTree(t, to); got["a"] != "2" {
		t.Errorf("Commit changed the deploy: %v", got)
	}
}

func TestRsyncRefuses(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "dir")
	file := filepath.Join(base, "file")
	writeTree(t, dir, map[string]string{"a": "1"})
	os.WriteFile(file, []byte("x"), 0o644)
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	tests := []struct {
		name, from, to, want string
	}{
		{"empty source would empty the target", empty, dir, "is empty: mirroring it with --delete would empty"},
		{"empty from", "", dir, "needs both"},
		{"empty to", dir, "", "needs both"},
		{"missing from", filepath.Join(base, "nope"), dir, "no such file"},
		{"missing to", dir, filepath.Join(base, "nope"), "no such file"},
		{"to is a file", dir, file, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(testService())
			step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRsync, Args: rsyncArgs(tt.from, tt.to, nil, nil)})
			undo, err := step.Do(context.Background(), &env.Env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Do error = %v, want %q", err, tt.want)
			}
			if undo != nil {
				t.Errorf("undo %q for a refused step", undo.Describe())
			}
			if got := readTree(t, dir); got["a"] != "1" {
				t.Errorf("a refused deploy changed the target: %v", got)
			}
		})
	}
}

func TestRsyncDirArg(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/srv/app", "/srv/app/"},
		{"/srv/app/", "/srv/app/"},
		{"/", "/"},
		{"-rf", "./-rf/"},
		{"rel/dir", "rel/dir/"},
	}
	for _, tt := range tests {
		if got := dirArg(tt.in); got != tt.want {
			t.Errorf("dirArg(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

var _ executor.Undo = (*rsyncUndo)(nil)

// TestRsyncRestoreKeepsExcludedDataAndNamesWhatItDiscards: files the
// service writes during the run into an excluded path (a database, uploads)
// survive the rollback's restore; a file outside the excluded paths that
// was not there before the deploy is deleted by the restore, and the
// restore's report names it.
func TestRsyncRestoreKeepsExcludedDataAndNamesWhatItDiscards(t *testing.T) {
	base := t.TempDir()
	from, to := filepath.Join(base, "release"), filepath.Join(base, "app")
	writeTree(t, from, map[string]string{"app.js": "v2"})
	writeTree(t, to, map[string]string{"app.js": "v1", "data/db.sqlite": "rows 1-10", "uploads/a.png": "A"})
	ageTree(t, to)
	exclude := []string{"/data/", "/uploads/"}
	env := newTestEnv(testService())
	var reports []string
	env.Env.ReportFunc = func(msg string) { reports = append(reports, msg) }
	ctx := context.Background()
	step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRsync, Args: rsyncArgs(from, to, exclude, nil)})
	undo, err := step.Do(ctx, &env.Env)
	if err != nil {
		t.Fatalf("Do: %v\n%s", err, env.output())
	}
	snap := filepath.Join(base, ".app.rollout-snapshot-run1")
	if got := readTree(t, snap); !equalTrees(got, map[string]string{"app.js": "v1"}) {
		t.Errorf("snapshot = %v: excluded data was copied", got)
	}
	// The service runs on v2 and writes.
	writeTree(t, to, map[string]string{"data/db.sqlite": "rows 1-11", "uploads/b.png": "B", "cache.tmp": "x"})
	if err := undo.Undo(ctx, &env.Env); err != nil {
		t.Fatalf("Undo: %v", err)
	}
	want := map[string]string{"app.js": "v1", "data/db.sqlite": "rows 1-11", "uploads/a.png": "A", "uploads/b.png": "B"}
	if got := readTree(t, to); !equalTrees(got, want) {
		t.Errorf("after the restore: %v, want %v", got, want)
	}
	if len(reports) != 1 || !strings.Contains(reports[0], "cache.tmp") || strings.Contains(reports[0], "uploads") {
		t.Errorf("the restore reported %q, want it to name cache.tmp (and nothing excluded)", reports)
	}
}

// TestRsyncJournalsTheCompleteSnapshotBeforeTheDeploy: the deploy's
// in-flight undo says "snapshot not complete" before the step starts; the
// step journals the complete snapshot before it changes the target; an
// undo recovered from the first record removes the partial snapshot and
// leaves the target alone; one from the second whose snapshot is gone
// fails, naming the directory a person must restore.
func TestRsyncJournalsTheCompleteSnapshotBeforeTheDeploy(t *testing.T) {
	base := t.TempDir()
	from, to := filepath.Join(base, "release"), filepath.Join(base, "app")
	writeTree(t, from, map[string]string{"app.js": "v2"})
	writeTree(t, to, map[string]string{"app.js": "v1"})
	ageTree(t, to)
	env := newTestEnv(testService())
	step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRsync, Args: rsyncArgs(from, to, nil, nil)})
	first, ok := step.(executor.InFlightRecordable).InFlightRecord(&env.Env)
	if !ok || first.Args["complete"] != "false" {
		t.Fatalf("in-flight record before the step: %+v, %v", first, ok)
	}
	var journaled []executor.UndoRecord
	env.Env.JournalFunc = func(rec executor.UndoRecord) error {
		if got := readTree(t, to)["app.js"]; got != "v1" {
			t.Errorf("the target changed (%s) before the snapshot was journaled", got)
		}
		journaled = append(journaled, rec)
		return nil
	}
	if _, err := step.Do(context.Background(), &env.Env); err != nil {
		t.Fatal(err)
	}
	if len(journaled) != 1 || journaled[0].Args["complete"] != "true" {
		t.Fatalf("journaled %+v, want the complete snapshot once", journaled)
	}

	// A run that died while snapshotting: the partial snapshot goes, the
	// target stays.
	partial := filepath.Join(base, ".app.rollout-snapshot-run1.partial")
	writeTree(t, partial, map[string]string{"app.js": "half"})
	u, err := Recover(first, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Undo(context.Background(), &env.Env); err != nil {
		t.Fatalf("undo of an unfinished snapshot: %v", err)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("partial snapshot left: %v", err)
	}
	if got := readTree(t, to)["app.js"]; got != "v2" {
		t.Errorf("the undo of an unfinished snapshot changed the target: %s", got)
	}

	// The complete snapshot is gone: a person must restore the target.
	os.RemoveAll(filepath.Join(base, ".app.rollout-snapshot-run1"))
	u, err = Recover(journaled[0], Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = u.Undo(context.Background(), &env.Env)
	if err == nil || !strings.Contains(err.Error(), to) || !strings.Contains(err.Error(), "restore its previous contents by hand") {
		t.Errorf("undo without its snapshot: %v", err)
	}
}

package steps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

func releaseArgs(from, to string, shared []string, keep int) map[string]cty.Value {
	args := map[string]cty.Value{
		"from":   cty.StringVal(from),
		"to":     cty.StringVal(to),
		"shared": cty.NullVal(cty.List(cty.String)),
		"keep":   cty.NullVal(cty.Number),
	}
	if shared != nil {
		var vs []cty.Value
		for _, s := range shared {
			vs = append(vs, cty.StringVal(s))
		}
		args["shared"] = cty.ListVal(vs)
	}
	if keep > 0 {
		args["keep"] = cty.NumberIntVal(int64(keep))
	}
	return args
}

// releaseBase makes BASE with releases/v1 current, as a first deploy would
// have left it.
func releaseBase(t *testing.T, files map[string]string) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "app")
	writeTree(t, filepath.Join(base, "releases", "20260101T000000Z-000001"), files)
	if err := os.Symlink("releases/20260101T000000Z-000001", filepath.Join(base, "current")); err != nil {
		t.Fatal(err)
	}
	return base
}

func mustCurrent(t *testing.T, base string) string {
	t.Helper()
	id, err := readCurrent(base)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestReleaseDeployAndUndo(t *testing.T) {
	base := releaseBase(t, map[string]string{"VERSION": "v1"})
	writeTree(t, filepath.Join(base, "shared"), map[string]string{"uploads/cat.jpg": "meow", ".env": "SECRET=1"})
	from := filepath.Join(t.TempDir(), "build")
	writeTree(t, from, map[string]string{"VERSION": "v2", "bin/app": "#!/bin/sh\n", "uploads/stale": "x", ".env": "wrong"})
	if err := os.Chmod(filepath.Join(from, "bin/app"), 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin/app", filepath.Join(from, "run")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(from, "VERSION"), old, old); err != nil {
		t.Fatal(err)
	}

	env := newTestEnv(testService())
	ctx := context.Background()
	step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRelease, Args: releaseArgs(from, base, []string{"uploads", ".env"}, 0)})
	undo, err := step.Do(ctx, &env.Env)
	if err != nil {
		t.Fatalf("Do: %v\n%s", err, env.output())
	}
	id := mustCurrent(t, base)
	if id == "20260101T000000Z-000001" || !validReleaseID(id) {
		t.Fatalf("current = %q after the deploy", id)
	}
	cur := filepath.Join(base, "current")
	for name, want := range map[string]string{"VERSION": "v2", "bin/app": "#!/bin/sh\n", "run": "#!/bin/sh\n", ".env": "SECRET=1"} {
		if b, err := os.ReadFile(filepath.Join(cur, name)); err != nil || string(b) != want {
			t.Errorf("current/%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(cur, "uploads", "stale")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the release's own uploads/ was not replaced by the shared one: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(cur, "uploads", "cat.jpg")); err != nil || string(b) != "meow" {
		t.Errorf("uploads not linked from shared/: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(cur, "bin/app")); err != nil || fi.Mode().Perm() != 0o751 {
		t.Errorf("bin/app mode %v, %v; want 0751", fi.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(cur, "run")); err != nil || l != "bin/app" {
		t.Errorf("symlink run -> %q, %v; want bin/app (copied as a link)", l, err)
	}
	if fi, err := os.Stat(filepath.Join(cur, "VERSION")); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("VERSION mtime %v, want %v", fi.ModTime(), old)
	}
	if l, _ := os.Readlink(cur); l != "releases/"+id {
		t.Errorf("current -> %q, want the relative releases/%s", l, id)
	}
	if !strings.Contains(undo.Describe(), "releases/20260101T000000Z-000001") {
		t.Errorf("Describe = %q", undo.Describe())
	}

	if err := undo.Undo(ctx, &env.Env); err != nil {
		t.Fatalf("Undo: %v", err)
	}
	if got := mustCurrent(t, base); got != "20260101T000000Z-000001" {
		t.Errorf("current = %q after undo, want the old release", got)
	}
	if _, err := os.Stat(releasePath(base, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed release is still there: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "shared", ".env")); string(b) != "SECRET=1" {
		t.Errorf("shared .env = %q after undo", b)
	}
}

// TestReleaseFirstDeploy: with no `current` yet, the release becomes it,
// shared/ is seeded from the release, and the undo removes `current`.
func TestReleaseFirstDeploy(t *testing.T) {
	base := filepath.Join(t.TempDir(), "app")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(t.TempDir(), "build")
	writeTree(t, from, map[string]string{"VERSION": "v1", "data/seed": "s"})
	env := newTestEnv(testService())
	step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRelease, Args: releaseArgs(from, base, []string{"data"}, 0)})
	undo, err := step.Do(context.Background(), &env.Env)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(base, "shared", "data", "seed")); err != nil || string(b) != "s" {
		t.Errorf("shared/data not seeded from the release: %q %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "current", "data", "seed")); string(b) != "s" {
		t.Errorf("current/data/seed = %q", b)
	}
	if err := undo.Undo(context.Background(), &env.Env); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(base, "current")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("current after undoing the first release: %v", err)
	}
	if rels, _ := listReleases(base); len(rels) != 0 {
		t.Errorf("releases left: %v", rels)
	}
}

func TestReleaseRefuses(t *testing.T) {
	tmp := t.TempDir()
	base := releaseBase(t, map[string]string{"VERSION": "v1"})
	empty := filepath.Join(tmp, "empty")
	os.Mkdir(empty, 0o755)
	full := filepath.Join(tmp, "full")
	writeTree(t, full, map[string]string{"VERSION": "v2"})
	dirBase := filepath.Join(tmp, "dirbase")
	writeTree(t, filepath.Join(dirBase, "current"), map[string]string{"VERSION": "in place"})
	fifoSrc := filepath.Join(tmp, "fifo")
	writeTree(t, fifoSrc, map[string]string{"a": "1"})
	if err := mkfifo(filepath.Join(fifoSrc, "pipe")); err != nil {
		t.Fatal(err)
	}
	viaLink := filepath.Join(tmp, "vialink")
	writeTree(t, viaLink, map[string]string{"VERSION": "v2"})
	outside := filepath.Join(tmp, "outside")
	writeTree(t, outside, map[string]string{"uploads/precious": "keep me"})
	if err := os.Symlink(outside, filepath.Join(viaLink, "storage")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, filepath.Join(base, "shared"), map[string]string{"storage/uploads/x": "shared"})
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(outside, "uploads", "precious")); err != nil || string(b) != "keep me" {
			t.Errorf("a file outside the release was touched: %q, %v", b, err)
		}
	})
	tests := []struct {
		name, from, to string
		shared         []string
		want           string
	}{
		{"shared path through a symlink", viaLink, base, []string{"storage/uploads"}, "a symlink in the release"},
		{"empty from", "", base, nil, "needs both"},
		{"empty source", empty, base, nil, "is empty"},
		{"missing source", filepath.Join(tmp, "nope"), base, nil, "no such file"},
		{"missing base", full, filepath.Join(tmp, "nope"), nil, "no such file"},
		{"source inside base", filepath.Join(base, "releases"), base, nil, "overlap"},
		{"current is a directory", full, dirBase, nil, "not a symlink"},
		{"shared path missing", full, base, []string{"uploads"}, "exists neither"},
		{"a pipe in the source", fifoSrc, base, nil, "named pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := listReleases(base)
			env := newTestEnv(testService())
			step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRelease, Args: releaseArgs(tt.from, tt.to, tt.shared, 0)})
			undo, err := step.Do(context.Background(), &env.Env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Do = %v, want an error with %q", err, tt.want)
			}
			if undo != nil {
				t.Errorf("undo %q for a refused deploy", undo.Describe())
			}
			if got := mustCurrent(t, base); got != "20260101T000000Z-000001" {
				t.Errorf("current moved to %q", got)
			}
			after, _ := listReleases(base)
			if len(after) != len(before) {
				t.Errorf("releases %v, want %v", after, before)
			}
			entries, _ := os.ReadDir(filepath.Join(base, "releases"))
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), partialSuffix) {
					t.Errorf("partial copy left: %s", e.Name())
				}
			}
		})
	}
}

// TestReleaseKeep: Commit prunes to keep, oldest first, but never the
// current release nor the previous one.
func TestReleaseKeep(t *testing.T) {
	base := filepath.Join(t.TempDir(), "app")
	ids := []string{"20260101T000001Z-a", "20260101T000002Z-a", "20260101T000003Z-a", "20260101T000004Z-a", "20260101T000005Z-a"}
	for _, id := range ids {
		writeTree(t, releasePath(base, id), map[string]string{"V": id})
	}
	if err := markBad(base, ids[2], "test"); err != nil {
		t.Fatal(err)
	}
	// current is the newest; the "previous" is the oldest (a rollback
	// went far back before this deploy).
	if err := switchCurrent(base, ids[4]); err != nil {
		t.Fatal(err)
	}
	u := &releaseUndo{base: base, back: ids[0], discard: ids[4], keep: 2}
	if err := u.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	rels, _ := listReleases(base)
	var got []string
	for _, r := range rels {
		got = append(got, r.ID)
	}
	want := []string{ids[0], ids[3], ids[4]}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("kept %v, want %v", got, want)
	}
	if _, err := os.Stat(releasePath(base, ids[2]) + badSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker of a pruned release left: %v", err)
	}
}

// TestSwitchCurrentNeverMissing: while `current` is switched back and
// forth, a reader never finds it missing: the new link replaces the old
// one in one rename.
func TestSwitchCurrentNeverMissing(t *testing.T) {
	base := filepath.Join(t.TempDir(), "app")
	a, b := "20260101T000001Z-a", "20260101T000002Z-b"
	writeTree(t, releasePath(base, a), map[string]string{"V": "a"})
	writeTree(t, releasePath(base, b), map[string]string{"V": "b"})
	if err := switchCurrent(base, a); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var missing, reads atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				reads.Add(1)
				if _, err := os.ReadFile(filepath.Join(base, "current", "V")); err != nil {
					missing.Add(1)
				}
			}
		}()
	}
	for i := range 300 {
		id := a
		if i%2 == 0 {
			id = b
		}
		if err := switchCurrent(base, id); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if missing.Load() > 0 {
		t.Errorf("%d of %d reads found no current", missing.Load(), reads.Load())
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 2 {
		t.Errorf("%d entries in the base, want releases and current (no temporary links)", len(entries))
	}
}

// TestReleaseCrashRecovery: the in-flight record, written before the step
// runs, is enough for recovery to put `current` back and remove the new
// release, whether the run died before the switch, during the copy, or
// after the switch.
func TestReleaseCrashRecovery(t *testing.T) {
	for _, stage := range []string{"before anything", "mid-copy", "after the switch"} {
		t.Run(stage, func(t *testing.T) {
			base := releaseBase(t, map[string]string{"VERSION": "v1"})
			from := filepath.Join(t.TempDir(), "build")
			writeTree(t, from, map[string]string{"VERSION": "v2"})
			step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRelease, Args: releaseArgs(from, base, nil, 0)})
			rec, ok := step.(executor.InFlightRecordable).InFlightRecord(nil)
			if !ok {
				t.Fatal("no in-flight record")
			}
			id := step.(*releaseStep).id
			switch stage {
			case "mid-copy":
				writeTree(t, partialPath(base, id), map[string]string{"VERSION": "v"})
			case "after the switch":
				env := newTestEnv(testService())
				if _, err := step.Do(context.Background(), &env.Env); err != nil {
					t.Fatal(err)
				}
				if got := mustCurrent(t, base); got != id {
					t.Fatalf("current = %s, want the new release %s", got, id)
				}
			}
			u, err := Recover(rec, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Undo(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if got := mustCurrent(t, base); got != "20260101T000000Z-000001" {
				t.Errorf("current = %q after recovery", got)
			}
			entries, _ := os.ReadDir(filepath.Join(base, "releases"))
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("releases/ holds %v after recovery, want only the old release", names)
			}
		})
	}
}

func TestSwitchRelease(t *testing.T) {
	base := releaseBase(t, map[string]string{"VERSION": "v1"})
	v2 := "20260102T000000Z-000002"
	writeTree(t, releasePath(base, v2), map[string]string{"VERSION": "v2"})
	if err := switchCurrent(base, v2); err != nil {
		t.Fatal(err)
	}
	args := func(release, expect string) map[string]cty.Value {
		return map[string]cty.Value{"to": cty.StringVal(base), "release": cty.StringVal(release), "expect": cty.StringVal(expect), "mark_bad": cty.NullVal(cty.Bool)}
	}
	env := newTestEnv(testService())
	ctx := context.Background()

	stale := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "switch", Type: TypeSwitchRelease, Args: args("20260101T000000Z-000001", "20260101T000000Z-000001")})
	if _, err := stale.Do(ctx, &env.Env); err == nil || !strings.Contains(err.Error(), "another deploy ran") {
		t.Errorf("switch with a stale expectation: %v", err)
	}

	step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "switch", Type: TypeSwitchRelease, Args: args("20260101T000000Z-000001", v2)})
	undo, err := step.Do(ctx, &env.Env)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustCurrent(t, base); got != "20260101T000000Z-000001" {
		t.Fatalf("current = %s", got)
	}
	// The rollback of the rollback: back to v2, which is not marked.
	if err := undo.Undo(ctx, &env.Env); err != nil {
		t.Fatal(err)
	}
	if got := mustCurrent(t, base); got != v2 {
		t.Fatalf("current = %s after undo", got)
	}
	if _, err := os.Stat(releasePath(base, v2)); err != nil {
		t.Fatalf("undo of a switch removed a release: %v", err)
	}
	if rels, _ := listReleases(base); rels[1].Bad != "" {
		t.Errorf("v2 marked bad by a rollback that was undone")
	}

	undo, err = step.Do(ctx, &env.Env)
	if err != nil {
		t.Fatal(err)
	}
	if err := undo.(executor.Committer).Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rels, _ := listReleases(base)
	if len(rels) != 2 || rels[0].Bad != "" || !strings.Contains(rels[1].Bad, "rolled back to 20260101T000000Z-000001") {
		t.Errorf("after a committed rollback: %+v, want v2 marked bad", rels)
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }

// TestReleaseBaseOf: `to` defaults to the working_dir without /current,
// and a service that would not run from BASE/current is refused.
func TestReleaseBaseOf(t *testing.T) {
	tests := []struct {
		wd, to, want, err string
	}{
		{"/srv/app/current", "", "/srv/app", ""},
		{"/srv/app/current/", "", "/srv/app", ""},
		{"/srv/app/current/backend", "/srv/app", "/srv/app", ""},
		{"", "/srv/app", "/srv/app", ""},
		{"/srv/app", "", "", "set `to`"},
		{"", "", "", "set `to`"},
		{"/srv/app", "/srv/app", "", "not inside /srv/app/current"},
		{"/srv/other/current", "/srv/app", "", "not inside"},
	}
	for _, tt := range tests {
		got, err := releaseBaseOf(&planner.Service{Name: "a", WorkingDir: tt.wd}, tt.to)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("wd %q to %q: %q, %v; want error with %q", tt.wd, tt.to, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("wd %q to %q: %q, %v; want %q", tt.wd, tt.to, got, err, tt.want)
		}
	}
}

// TestReleaseCancelled: a cancelled run stops the copy, leaves no partial
// release and does not switch.
func TestReleaseCancelled(t *testing.T) {
	base := releaseBase(t, map[string]string{"VERSION": "v1"})
	from := filepath.Join(t.TempDir(), "build")
	writeTree(t, from, map[string]string{"VERSION": "v2", "a/b": "c"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := newTestEnv(testService())
	step := mustBuild(t, newScripted().builder(), testService(), &planner.Step{Name: "deploy", Type: TypeRelease, Args: releaseArgs(from, base, nil, 0)})
	if _, err := step.Do(ctx, &env.Env); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with a cancelled context: %v", err)
	}
	if got := mustCurrent(t, base); got != "20260101T000000Z-000001" {
		t.Errorf("current = %s", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(base, "releases")); len(entries) != 1 {
		t.Errorf("%d entries in releases/, want the old release only", len(entries))
	}
}

// BenchmarkCopyTree copies a build of 2,000 files of 4 KiB in 100
// directories, as the release step does.
func BenchmarkCopyTree(b *testing.B) {
	src := filepath.Join(b.TempDir(), "build")
	content := strings.Repeat("x", 4096)
	for d := range 100 {
		dir := filepath.Join(src, "d"+strconv.Itoa(d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 20 {
			if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(f)), []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	dst := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		if err := copyTree(context.Background(), src, filepath.Join(dst, strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
}

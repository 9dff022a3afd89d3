package steps

import (
	"context"
	"os"
	"path/filepath"
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
			if got := readTree(t, snap); !equalTrees(got, old) {
				t.Fatalf("snapshot = %v, want %v", got, old)
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
			if _, err := os.Stat(snap); !os.IsNotExist(err) {
				t.Errorf("snapshot left after undo: %v", err)
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

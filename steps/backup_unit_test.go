package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/internal/testenv"
	"github.com/rollout-sh/rollout/planner"
)

func backupStep(unit string) *planner.Step {
	args := map[string]cty.Value{"unit": cty.NullVal(cty.String)}
	if unit != "" {
		args["unit"] = cty.StringVal(unit)
	}
	return &planner.Step{Name: "backup", Type: TypeBackupUnit, Args: args}
}

func TestBackupUnitAndUndo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.service")
	if err := os.WriteFile(path, []byte("[Service]\nExecStart=/old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	sd := newScripted()
	sd.SetUnit("app.service", UnitState{ActiveState: "active", FragmentPath: path})
	env := newTestEnv(testService())
	ctx := context.Background()

	undo, err := mustBuild(t, sd.builder(), testService(), backupStep("")).Do(ctx, &env.Env)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	backup, err := os.ReadFile(path + ".backup")
	if err != nil || string(backup) != "[Service]\nExecStart=/old\n" {
		t.Fatalf("backup = %q, %v", backup, err)
	}
	if fi, _ := os.Stat(path + ".backup"); fi.Mode().Perm() != 0o640 {
		t.Errorf("backup mode = %v, want 0640", fi.Mode().Perm())
	}
	if want := "restore " + path + " from " + path + ".backup, daemon-reload"; undo.Describe() != want {
		t.Errorf("Describe = %q, want %q", undo.Describe(), want)
	}

	// A deploy rewrites the unit file with another mode.
	if err := os.WriteFile(path, []byte("[Service]\nExecStart=/new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o600)
	if err := undo.Undo(ctx, &env.Env); err != nil {
		t.Fatalf("Undo: %v", err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "[Service]\nExecStart=/old\n" {
		t.Errorf("restored content = %q", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("restored mode = %v, want 0640", fi.Mode().Perm())
	}
	if log := strings.Join(sd.Log(), ","); log != "daemon-reload" {
		t.Errorf("backend calls = %q, want daemon-reload", log)
	}
	// No temporary files are left beside the unit file.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("dir holds %v, want the unit file and its backup", names)
	}
}

func TestBackupUnitSymlinks(t *testing.T) {
	tests := []struct {
		name    string
		inside  bool // the link's target is in the unit's directory
		wantErr string
	}{
		{"target outside the directory is refused", false, "outside"},
		{"target inside the directory is followed", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unitDir, otherDir := t.TempDir(), t.TempDir()
			targetDir := otherDir
			if tt.inside {
				targetDir = unitDir
			}
			target := filepath.Join(targetDir, "real.service")
			if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(unitDir, "app.service")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			sd := newScripted()
			sd.SetUnit("app.service", UnitState{FragmentPath: link})
			env := newTestEnv(testService())
			ctx := context.Background()
			undo, err := mustBuild(t, sd.builder(), testService(), backupStep("")).Do(ctx, &env.Env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Do error = %v, want %q", err, tt.wantErr)
				}
				if _, err := os.Lstat(link + ".backup"); err == nil {
					t.Error("a backup was written although the step was refused")
				}
				return
			}
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			os.WriteFile(target, []byte("new"), 0o644)
			if err := undo.Undo(ctx, &env.Env); err != nil {
				t.Fatalf("Undo: %v", err)
			}
			// The restore writes through to the target; the link stays.
			if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("link replaced: %v %v", fi, err)
			}
			if got, _ := os.ReadFile(target); string(got) != "old" {
				t.Errorf("target = %q, want old", got)
			}
		})
	}
}

func TestBackupUnitRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		state UnitState
		want  string
	}{
		{"not loaded", UnitState{LoadState: "not-found"}, "not-found, not loaded"},
		{"no fragment", UnitState{}, "no unit file"},
		{"fragment missing", UnitState{FragmentPath: filepath.Join(dir, "gone.service")}, "no such file"},
		{"fragment is a directory", UnitState{FragmentPath: dir}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := newScripted()
			sd.SetUnit("x.service", tt.state)
			env := newTestEnv(testService())
			undo, err := mustBuild(t, sd.builder(), testService(), backupStep("x.service")).Do(context.Background(), &env.Env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Do error = %v, want %q", err, tt.want)
			}
			if undo != nil {
				t.Errorf("undo = %v, want nil for a step that changed nothing", undo.Describe())
			}
		})
	}
}

func TestBackupUndoWithoutBackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.service")
	os.WriteFile(path, []byte("x"), 0o644)
	sd := newScripted()
	sd.SetUnit("app.service", UnitState{FragmentPath: path})
	env := newTestEnv(testService())
	undo, err := mustBuild(t, sd.builder(), testService(), backupStep("")).Do(context.Background(), &env.Env)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path + ".backup")
	if err := undo.Undo(context.Background(), &env.Env); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Fatalf("Undo error = %v, want it to tell a person to act", err)
	}
	if len(sd.Log()) != 0 {
		t.Errorf("backend calls %v after a failed restore", sd.Log())
	}
}

func TestBackupKeepsOwner(t *testing.T) {
	testenv.NeedRoot(t, "changing a file's owner needs root")
	dir := t.TempDir()
	path := filepath.Join(dir, "app.service")
	os.WriteFile(path, []byte("x"), 0o644)
	if err := os.Chown(path, 4321, 4322); err != nil {
		t.Fatal(err)
	}
	if err := copyFileAtomic(path, path+".backup"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path + ".backup")
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 4321 || st.Gid != 4322 {
		t.Errorf("backup owner = %d:%d, want 4321:4322", st.Uid, st.Gid)
	}
}

package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// backup_unit copies the unit's file (FragmentPath from systemd) to
// <file>.backup, as the reference does before it touches anything, so that
// the rollback can put the old unit file back.
func backupUnitStepType() planner.StepType {
	return planner.StepType{
		Name: TypeBackupUnit,
		Spec: hcldec.ObjectSpec{
			"unit": &hcldec.AttrSpec{Name: "unit", Type: cty.String},
		},
		Rollback: "restores the unit file from .backup, daemon-reload",
	}
}

type backupUnitStep struct {
	unit string
	sd   Backend
}

func (b *builder) buildBackupUnit(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	return &backupUnitStep{unit: stepUnit(svc, r), sd: b.sd}, nil
}

func (s *backupUnitStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	st, err := s.sd.Status(ctx, s.unit)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", s.unit, err)
	}
	if st.LoadState != "loaded" {
		return nil, fmt.Errorf("unit %s is %s, not loaded: there is no unit file to back up", s.unit, loadStateText(st.LoadState))
	}
	if st.FragmentPath == "" {
		return nil, fmt.Errorf("unit %s has no unit file (FragmentPath is empty; it is transient or generated), so there is nothing to back up", s.unit)
	}
	file, err := unitFileTarget(st.FragmentPath)
	if err != nil {
		return nil, err
	}
	backup := st.FragmentPath + ".backup"
	if err := copyFileAtomic(file, backup); err != nil {
		return nil, fmt.Errorf("back up %s: %w", st.FragmentPath, err)
	}
	logf(env, "backed up %s to %s", st.FragmentPath, backup)
	return &backupUnitUndo{path: st.FragmentPath, file: file, backup: backup, sd: s.sd}, nil
}

func loadStateText(s string) string {
	if s == "" {
		return "in an unknown load state"
	}
	return s
}

// unitFileTarget returns the regular file behind path. A symlink is
// followed only when its target stays in the unit file's directory: a
// link to elsewhere (/opt/app/app.service) is shared with something we do
// not own, and restoring it could overwrite that.
func unitFileTarget(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("unit file: %w", err)
	}
	target := path
	if fi.Mode()&fs.ModeSymlink != 0 {
		resolved, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "", fmt.Errorf("unit file %s: %w", path, err)
		}
		dir, err := filepath.EvalSymlinks(filepath.Dir(path))
		if err != nil {
			return "", fmt.Errorf("unit file directory: %w", err)
		}
		rel, err := filepath.Rel(dir, resolved)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			return "", fmt.Errorf("unit file %s is a symlink to %s, outside %s; back it up by hand or point the unit at a regular file", path, resolved, filepath.Dir(path))
		}
		target = resolved
		if fi, err = os.Stat(target); err != nil {
			return "", fmt.Errorf("unit file: %w", err)
		}
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("unit file %s is not a regular file", path)
	}
	return target, nil
}

// copyFileAtomic copies src to dst with src's mode and owner. It writes a
// temporary file beside dst and renames it over dst, so that a crash never
// leaves a half-written unit file, and a symlink at dst is replaced rather
// than followed.
func copyFileAtomic(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, in); err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err = os.Lchown(tmp.Name(), int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("keep owner of %s: %w", src, err)
		}
	}
	// Chmod after chown: chown clears setuid/setgid bits.
	if err = tmp.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// backupUnitUndo puts the unit file back from its .backup and reloads
// systemd so that the next start uses it. The .backup is kept, as the
// reference keeps it, for a person who has to act by hand.
type backupUnitUndo struct {
	path   string // FragmentPath as systemd reports it
	file   string // the regular file behind path (path, or its symlink's target)
	backup string
	sd     Backend
}

func (u *backupUnitUndo) Describe() string {
	return fmt.Sprintf("restore %s from %s, daemon-reload", u.path, u.backup)
}

func (u *backupUnitUndo) Undo(ctx context.Context, env *executor.Env) error {
	fi, err := os.Lstat(u.backup)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("backup %s is gone; restore %s by hand", u.backup, u.path)
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		// Written by us as a regular file; anything else was put there
		// since, and is not restored blindly.
		return fmt.Errorf("backup %s is no longer a regular file; restore %s by hand", u.backup, u.path)
	}
	if err := copyFileAtomic(u.backup, u.file); err != nil {
		return fmt.Errorf("restore %s from %s: %w", u.path, u.backup, err)
	}
	logf(env, "restored %s from %s", u.path, u.backup)
	if err := u.sd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("daemon-reload after restoring %s: %w", u.path, err)
	}
	logf(env, "daemon-reload")
	return nil
}

package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

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
	host Host
	sd   Backend
}

func (b *builder) buildBackupUnit(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	return &backupUnitStep{unit: stepUnit(svc, r), host: b.host, sd: b.sd}, nil
}

func (s *backupUnitStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	h := s.host
	if h == nil {
		h = Local{SD: s.sd}
	}
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
	file, err := unitFileTarget(ctx, h, st.FragmentPath)
	if err != nil {
		return nil, err
	}
	backup := st.FragmentPath + ".backup"
	if err := copyFileOn(ctx, h, file, backup); err != nil {
		return nil, fmt.Errorf("back up %s%s: %w", st.FragmentPath, where(h), err)
	}
	logf(env, "backed up %s to %s%s", st.FragmentPath, backup, where(h))
	return &backupUnitUndo{path: st.FragmentPath, file: file, backup: backup, host: h, sd: s.sd}, nil
}

func loadStateText(s string) string {
	if s == "" {
		return "in an unknown load state"
	}
	return s
}

// unitFileTarget returns the regular file behind path on h. A symlink is
// followed only when its target stays in the unit file's directory: a
// link to elsewhere (/opt/app/app.service) is shared with something we do
// not own, and restoring it could overwrite that.
func unitFileTarget(ctx context.Context, h Host, path string) (string, error) {
	fi, err := h.Stat(ctx, path)
	if err != nil {
		return "", fmt.Errorf("unit file%s: %w", where(h), err)
	}
	target := path
	if fi.Mode&fs.ModeSymlink != 0 {
		resolved, err := h.Realpath(ctx, path)
		if err != nil {
			return "", fmt.Errorf("unit file %s%s: %w", path, where(h), err)
		}
		dir, err := h.Realpath(ctx, filepath.Dir(path))
		if err != nil {
			return "", fmt.Errorf("unit file directory%s: %w", where(h), err)
		}
		rel, err := filepath.Rel(dir, resolved)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			return "", fmt.Errorf("unit file %s is a symlink to %s, outside %s; back it up by hand or point the unit at a regular file", path, resolved, filepath.Dir(path))
		}
		target = resolved
		if fi, err = h.Stat(ctx, target); err != nil {
			return "", fmt.Errorf("unit file%s: %w", where(h), err)
		}
	}
	if !fi.Mode.IsRegular() {
		return "", fmt.Errorf("unit file %s is not a regular file", path)
	}
	return target, nil
}

// copyFileAtomic copies src to dst on the local machine with src's mode
// and owner, atomically (see Local.WriteFile).
func copyFileAtomic(src, dst string) error {
	return copyFileOn(context.Background(), Local{}, src, dst)
}

// backupUnitUndo puts the unit file back from its .backup and reloads
// systemd so that the next start uses it. The .backup is kept, as the
// reference keeps it, for a person who has to act by hand.
type backupUnitUndo struct {
	path   string // FragmentPath as systemd reports it
	file   string // the regular file behind path (path, or its symlink's target)
	backup string
	host   Host
	sd     Backend
}

func (u *backupUnitUndo) Describe() string {
	return fmt.Sprintf("restore %s from %s, daemon-reload%s", u.path, u.backup, where(u.host))
}

func (u *backupUnitUndo) Undo(ctx context.Context, env *executor.Env) error {
	h := u.host
	if h == nil {
		h = Local{SD: u.sd}
	}
	fi, err := h.Stat(ctx, u.backup)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("backup %s%s is gone; restore %s by hand", u.backup, where(h), u.path)
		}
		return err
	}
	if !fi.Mode.IsRegular() {
		// Written by us as a regular file; anything else was put there
		// since, and is not restored blindly.
		return fmt.Errorf("backup %s%s is no longer a regular file; restore %s by hand", u.backup, where(h), u.path)
	}
	if err := copyFileOn(ctx, h, u.backup, u.file); err != nil {
		return fmt.Errorf("restore %s from %s%s: %w", u.path, u.backup, where(h), err)
	}
	logf(env, "restored %s from %s%s", u.path, u.backup, where(h))
	if err := u.sd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("daemon-reload after restoring %s%s: %w", u.path, where(h), err)
	}
	logf(env, "daemon-reload")
	return nil
}

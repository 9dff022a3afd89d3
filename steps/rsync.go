package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// rsync deploys code: it snapshots `to`, then mirrors `from` into it with
// the real rsync binary. The snapshot is what the undo restores.
func rsyncStepType() planner.StepType {
	return planner.StepType{
		Name: TypeRsync,
		Spec: hcldec.ObjectSpec{
			"from":    &hcldec.AttrSpec{Name: "from", Type: cty.String, Required: true},
			"to":      &hcldec.AttrSpec{Name: "to", Type: cty.String, Required: true},
			"exclude": &hcldec.AttrSpec{Name: "exclude", Type: cty.List(cty.String)},
			"delete":  &hcldec.AttrSpec{Name: "delete", Type: cty.Bool},
			// checksum (default true) compares contents instead of size
			// and mtime: a release built in the same second as the old
			// one, with files of the same size, must still be deployed.
			"checksum": &hcldec.AttrSpec{Name: "checksum", Type: cty.Bool},
		},
		Rollback: "restores the snapshot of `to`",
		// Two services deploying from one directory, or into one, would
		// overwrite each other's code.
		UniqueArgs: []string{"from", "to"},
	}
}

type rsyncStep struct {
	from, to string
	exclude  []string
	delete   bool
	checksum bool
}

func (b *builder) buildRsync(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &rsyncStep{delete: true, checksum: true}
	s.from, _ = r.str("from")
	s.to, _ = r.str("to")
	s.exclude, _ = r.strList("exclude")
	if d, ok := r.boolean("delete"); ok {
		s.delete = d
	}
	if c, ok := r.boolean("checksum"); ok {
		s.checksum = c
	}
	// Empty from/to are refused in Do, not here: `from = run.deploy_path`
	// is empty in every run without --deploy, where the step's `if` skips
	// it, and building must not fail for a step that will not run.
	return s, nil
}

// snapshotPath is the sibling directory that holds a copy of to during a
// run: hidden, and named after the run so concurrent or leftover
// snapshots never collide.
func snapshotPath(to, runID string) string {
	to = filepath.Clean(to)
	return filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+".rollout-snapshot-"+runID)
}

func (s *rsyncStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	if s.from == "" || s.to == "" {
		return nil, fmt.Errorf("rsync needs both from and to (from = %q, to = %q)", s.from, s.to)
	}
	if fi, err := os.Stat(s.from); err != nil {
		return nil, fmt.Errorf("rsync source: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("rsync source %q is not a directory", s.from)
	}
	// An empty source mirrored with --delete empties the target: a failed
	// build or a wrong --deploy-path. Preflight refuses it before the run;
	// this refuses it again for any caller that did not run preflight.
	if s.delete {
		if empty, err := dirEmpty(s.from); err != nil {
			return nil, fmt.Errorf("rsync source: %w", err)
		} else if empty {
			return nil, fmt.Errorf("rsync source %s is empty: mirroring it with --delete would empty %s", s.from, s.to)
		}
	}
	// A missing target is refused rather than created: its undo would have
	// to delete the whole directory, and a typo in `to` should not deploy
	// code to a fresh path.
	if fi, err := os.Stat(s.to); err != nil {
		return nil, fmt.Errorf("rsync target: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("rsync target %q is not a directory", s.to)
	}
	runID := "run"
	if env != nil && env.RunID != "" {
		runID = env.RunID
	}
	snap := snapshotPath(s.to, runID)
	logf(env, "snapshot %s to %s", s.to, snap)
	if err := runRsync(ctx, env, "--delete", s.to, snap); err != nil {
		// Nothing of `to` changed; a partial snapshot is only clutter.
		_ = os.RemoveAll(snap)
		return nil, fmt.Errorf("snapshot of %s: %w", s.to, err)
	}
	u := &rsyncUndo{to: s.to, snapshot: snap}
	args := []string{}
	if s.delete {
		args = append(args, "--delete")
	}
	if s.checksum {
		args = append(args, "--checksum")
	}
	for _, x := range s.exclude {
		// One argv element per option, so a pattern cannot become a flag.
		args = append(args, "--exclude="+x)
	}
	args = append(args, s.from, s.to)
	if err := runRsync(ctx, env, args...); err != nil {
		return u, err
	}
	return u, nil
}

// runRsync runs `rsync -a OPTS... SRC/ DST/`: the last two args are
// directories whose contents are mirrored.
func runRsync(ctx context.Context, env *executor.Env, args ...string) error {
	if len(args) < 2 {
		return errors.New("rsync: source and destination required")
	}
	n := len(args)
	argv := append([]string{"rsync", "-a"}, args[:n-2]...)
	argv = append(argv, dirArg(args[n-2]), dirArg(args[n-1]))
	return runCommand(ctx, env, command{argv: argv})
}

// dirArg makes p an rsync "contents of" argument (trailing slash) that
// cannot be read as an option.
func dirArg(p string) string {
	p = filepath.Clean(p)
	if strings.HasPrefix(p, "-") {
		p = "./" + p
	}
	if p == "/" {
		return p
	}
	return p + "/"
}

// rsyncUndo restores `to` from the snapshot taken before the deploy.
//
// Commit removes the snapshot without restoring it. The executor calls it
// (through the optional executor.Committer interface) once the service has
// succeeded, so that a successful run leaves no snapshots behind; after a
// rollback, Undo has removed it already.
type rsyncUndo struct {
	to, snapshot string
}

func (u *rsyncUndo) Describe() string {
	return fmt.Sprintf("restore %s from snapshot %s", u.to, u.snapshot)
}

func (u *rsyncUndo) Undo(ctx context.Context, env *executor.Env) error {
	if _, err := os.Stat(u.snapshot); err != nil {
		return fmt.Errorf("snapshot of %s: %w", u.to, err)
	}
	// --checksum: the deploy may have left files of the old size and
	// mtime second with new contents; the restore must not skip them.
	if err := runRsync(ctx, env, "--delete", "--checksum", u.snapshot, u.to); err != nil {
		// The snapshot is kept: it is the only copy of the old code.
		return fmt.Errorf("restore %s from %s: %w", u.to, u.snapshot, err)
	}
	if err := os.RemoveAll(u.snapshot); err != nil {
		return fmt.Errorf("restored %s, but removing the snapshot failed: %w", u.to, err)
	}
	return nil
}

// Commit discards the snapshot: the deploy stands.
func (u *rsyncUndo) Commit(ctx context.Context) error {
	if err := os.RemoveAll(u.snapshot); err != nil {
		return fmt.Errorf("remove snapshot of %s: %w", u.to, err)
	}
	return nil
}

// dirEmpty reports whether the directory at path has no entries.
func dirEmpty(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

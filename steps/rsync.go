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
	"golang.org/x/sys/unix"

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
	host     Host // nil or local: where rollout runs
	from, to string
	exclude  []string
	delete   bool
	checksum bool
}

func (b *builder) buildRsync(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &rsyncStep{host: b.host, delete: true, checksum: true}
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

// snapshotPartialSuffix names a snapshot being taken: only a snapshot that was
// taken whole carries the snapshot's own name.
const snapshotPartialSuffix = ".partial"

func (s *rsyncStep) runID(env *executor.Env) string {
	if env != nil && env.RunID != "" {
		return env.RunID
	}
	return "run"
}

// undo is the undo of this deploy: restore the snapshot of `to`, leaving
// the excluded paths alone. complete says the snapshot was taken whole.
func (s *rsyncStep) undo(env *executor.Env, complete bool) *rsyncUndo {
	return &rsyncUndo{to: s.to, snapshot: snapshotPath(s.to, s.runID(env)), exclude: s.exclude, complete: complete}
}

// Do snapshots `to` (without the excluded paths, which the deploy leaves
// alone too) into a directory named .partial until it is whole, makes it
// durable, renames it, journals the complete snapshot, and only then
// deploys. A crash during the snapshot leaves `to` untouched (recovery
// removes the partial snapshot); a crash during the deploy leaves a
// complete snapshot the journal names.
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
	if s.host != nil && s.host.Name() != "" {
		return s.doRemote(ctx, env)
	}
	// A missing target is refused rather than created: its undo would have
	// to delete the whole directory, and a typo in `to` should not deploy
	// code to a fresh path.
	if fi, err := os.Stat(s.to); err != nil {
		return nil, fmt.Errorf("rsync target: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("rsync target %q is not a directory", s.to)
	}
	u := s.undo(env, true)
	partial := u.snapshot + snapshotPartialSuffix
	logf(env, "snapshot %s to %s", s.to, u.snapshot)
	// Leftovers of an earlier attempt of this run would be merged in.
	_ = os.RemoveAll(partial)
	_ = os.RemoveAll(u.snapshot)
	if err := runRsync(ctx, env, append(excludeArgs(s.exclude), s.to, partial)...); err != nil {
		// Nothing of `to` changed; a partial snapshot is only clutter.
		_ = os.RemoveAll(partial)
		return nil, fmt.Errorf("snapshot of %s: %w", s.to, err)
	}
	if err := persistSnapshot(partial, u.snapshot); err != nil {
		_ = os.RemoveAll(partial)
		return nil, fmt.Errorf("snapshot of %s: %w", s.to, err)
	}
	if err := env.JournalInFlight(u.Record()); err != nil {
		_ = os.RemoveAll(u.snapshot)
		return nil, fmt.Errorf("snapshot of %s taken, but not journaled, so the deploy did not start: %w", s.to, err)
	}
	args := []string{}
	if s.delete {
		args = append(args, "--delete")
	}
	if s.checksum {
		args = append(args, "--checksum")
	}
	args = append(args, excludeArgs(s.exclude)...)
	args = append(args, s.from, s.to)
	if err := runRsync(ctx, env, args...); err != nil {
		return u, err
	}
	return u, nil
}

// excludeArgs passes patterns to rsync, one argv element per option, so a
// pattern cannot become a flag.
func excludeArgs(patterns []string) []string {
	out := make([]string, 0, len(patterns))
	for _, x := range patterns {
		out = append(out, "--exclude="+x)
	}
	return out
}

// persistSnapshot makes the snapshot in partial durable (rsync does not
// fsync: one syncfs of its filesystem does) and renames it to final, so
// that a snapshot under its own name is always whole.
func persistSnapshot(partial, final string) error {
	d, err := os.Open(partial)
	if err != nil {
		return err
	}
	err = unix.Syncfs(int(d.Fd()))
	d.Close()
	if err != nil {
		return fmt.Errorf("syncfs: %w", err)
	}
	if err := os.Rename(partial, final); err != nil {
		return err
	}
	if p, err := os.Open(filepath.Dir(final)); err == nil {
		_ = p.Sync()
		p.Close()
	}
	return nil
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
	return runCommand(ctx, env, nil, command{argv: argv})
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

// rsyncUndo restores `to` from the snapshot taken before the deploy,
// leaving the excluded paths (data the service writes: uploads, a
// database file) alone, and names in its event every file the restore
// deleted: files that were not there before the deploy, which the deploy
// or the service created during the run.
//
// The snapshot is removed by Commit (the service succeeded) or Discard
// (the executor journaled the restore as done), never by Undo: a recovery
// never finds the undo due and the snapshot gone.
type rsyncUndo struct {
	to, snapshot string
	exclude      []string
	// complete: the snapshot was taken whole and the deploy may have
	// started. False: the run died while taking it, `to` is untouched.
	complete bool
}

func (u *rsyncUndo) Describe() string {
	if !u.complete {
		return fmt.Sprintf("remove the unfinished snapshot %s (the deploy into %s had not started)", u.snapshot+snapshotPartialSuffix, u.to)
	}
	return fmt.Sprintf("restore %s from snapshot %s", u.to, u.snapshot)
}

func (u *rsyncUndo) Undo(ctx context.Context, env *executor.Env) error {
	if !u.complete {
		// The deploy starts only after the complete snapshot is
		// journaled: `to` holds the code it held before the run.
		if err := u.Discard(ctx); err != nil {
			return err
		}
		env.Report("the deploy had not started: " + u.to + " is unchanged")
		return nil
	}
	if fi, err := os.Stat(u.snapshot); err != nil || !fi.IsDir() {
		return fmt.Errorf("the snapshot %s of %s is missing (%v): %s may hold part of the new release; restore its previous contents by hand (from the release deployed before this run)", u.snapshot, u.to, err, u.to)
	}
	args := []string{"--delete", "--checksum", "--itemize-changes"}
	args = append(args, excludeArgs(u.exclude)...)
	args = append(args, u.snapshot, u.to)
	var deleted []string
	capture := executor.Env{}
	if env != nil {
		capture = *env
	}
	capture.Logf = func(format string, a ...any) {
		line := fmt.Sprintf(format, a...)
		if name, ok := strings.CutPrefix(line, "*deleting "); ok {
			deleted = append(deleted, strings.TrimSpace(name))
		}
		logf(env, "%s", line)
	}
	if err := runRsync(ctx, &capture, args...); err != nil {
		// The snapshot is kept: it is the only copy of the old code.
		return fmt.Errorf("restore %s from %s: %w", u.to, u.snapshot, err)
	}
	if len(deleted) > 0 {
		env.Report(fmt.Sprintf("discarded %s not in the snapshot: %s", countNoun(len(deleted), "path"), listSome(deleted, 20)))
	}
	return nil
}

// Commit discards the snapshot (and a partial one): the deploy stands.
func (u *rsyncUndo) Commit(ctx context.Context) error { return u.Discard(ctx) }

// Discard removes the snapshot (and a partial one) once the restore is
// journaled as done (executor.Discarder).
func (u *rsyncUndo) Discard(ctx context.Context) error {
	for _, p := range []string{u.snapshot + snapshotPartialSuffix, u.snapshot} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove snapshot of %s: %w", u.to, err)
		}
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

// listSome joins up to n names, then says how many more there are.
func listSome(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

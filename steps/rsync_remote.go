package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/rollout-sh/rollout/executor"
)

// doRemote is Do for an instance on a host: the source is on the
// controller, the target and its snapshot on the host. The snapshot is
// taken there (rsync on the host) under a .partial name, renamed when
// whole, journaled, and only then is the release uploaded with rsync over
// the host's ssh connection.
func (s *rsyncStep) doRemote(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	h := s.host
	if fi, err := statFollow(ctx, h, s.to); err != nil {
		return nil, fmt.Errorf("rsync target%s: %w", where(h), err)
	} else if !fi.Mode.IsDir() {
		return nil, fmt.Errorf("rsync target %q%s is not a directory", s.to, where(h))
	}
	u := &remoteRsyncUndo{host: h, to: s.to, snapshot: snapshotPath(s.to, s.runID(env)), exclude: s.exclude}
	partial := u.snapshot + snapshotPartialSuffix
	logf(env, "snapshot %s to %s%s", s.to, u.snapshot, where(h))
	_ = h.RemoveAll(ctx, partial)
	_ = h.RemoveAll(ctx, u.snapshot)
	if err := runRsyncOn(ctx, env, h, append(excludeArgs(s.exclude), s.to, partial)...); err != nil {
		_ = h.RemoveAll(ctx, partial)
		return nil, fmt.Errorf("snapshot of %s%s: %w", s.to, where(h), err)
	}
	if _, err := output(ctx, h, "sh", "-c", `sync -f "$1" 2>/dev/null; mv -T -- "$1" "$2" && sync -f "$2" 2>/dev/null; true`, "sh", partial, u.snapshot); err != nil {
		_ = h.RemoveAll(ctx, partial)
		return nil, fmt.Errorf("snapshot of %s%s: %w", s.to, where(h), err)
	}
	if err := env.JournalInFlight(u.Record()); err != nil {
		_ = h.RemoveAll(ctx, u.snapshot)
		return nil, fmt.Errorf("snapshot of %s%s taken, but not journaled, so the deploy did not start: %w", s.to, where(h), err)
	}
	args := []string{}
	if s.delete {
		args = append(args, "--delete")
	}
	if s.checksum {
		args = append(args, "--checksum")
	}
	args = append(args, excludeArgs(s.exclude)...)
	logf(env, "rsync %s to %s:%s", s.from, h.Name(), s.to)
	if err := uploadRsync(ctx, env, h, args, s.from, s.to); err != nil {
		return u, err
	}
	return u, nil
}

// statFollow is stat(2) on h: Stat, then the symlink's target when it is one.
func statFollow(ctx context.Context, h Host, path string) (FileInfo, error) {
	fi, err := h.Stat(ctx, path)
	if err != nil || fi.Mode&fs.ModeSymlink == 0 {
		return fi, err
	}
	real, err := h.Realpath(ctx, path)
	if err != nil {
		return FileInfo{}, err
	}
	return h.Stat(ctx, real)
}

// runRsyncOn runs `rsync -a OPTS... SRC/ DST/` on h: the last two args
// are directories on h whose contents are mirrored.
func runRsyncOn(ctx context.Context, env *executor.Env, h Host, args ...string) error {
	if len(args) < 2 {
		return errors.New("rsync: source and destination required")
	}
	n := len(args)
	argv := append([]string{"rsync", "-a"}, args[:n-2]...)
	argv = append(argv, dirArg(args[n-2]), dirArg(args[n-1]))
	return runCommand(ctx, env, h, command{argv: argv})
}

// uploadRsync mirrors the controller's src into dst on h, with the same
// error reporting as runCommand.
func uploadRsync(ctx context.Context, env *executor.Env, h Host, opts []string, src, dst string) error {
	out := &outputLog{logf: func(line string) { logf(env, "%s", line) }}
	err := h.Upload(ctx, opts, src, dst, out)
	out.flush()
	if err == nil {
		return nil
	}
	if tail := out.lastLines(errorTailLines); tail != "" {
		return fmt.Errorf("rsync %s to %s%s: %w; last output:\n%s", src, dst, where(h), err, tail)
	}
	return fmt.Errorf("rsync %s to %s%s: %w", src, dst, where(h), err)
}

// remoteRsyncUndo restores `to` on the host from the snapshot taken there.
// Commit removes the snapshot without restoring it.
type remoteRsyncUndo struct {
	host         Host
	to, snapshot string
	exclude      []string
}

func (u *remoteRsyncUndo) Describe() string {
	return fmt.Sprintf("restore %s from snapshot %s%s", u.to, u.snapshot, where(u.host))
}

func (u *remoteRsyncUndo) Undo(ctx context.Context, env *executor.Env) error {
	if _, err := u.host.Stat(ctx, u.snapshot); err != nil {
		return fmt.Errorf("snapshot of %s%s: %w", u.to, where(u.host), err)
	}
	// --checksum: the deploy may have left files of the old size and
	// mtime second with new contents; the restore must not skip them.
	args := append([]string{"--delete", "--checksum"}, excludeArgs(u.exclude)...)
	if err := runRsyncOn(ctx, env, u.host, append(args, u.snapshot, u.to)...); err != nil {
		// The snapshot is kept: it is the only copy of the old code.
		return fmt.Errorf("restore %s from %s%s: %w", u.to, u.snapshot, where(u.host), err)
	}
	if err := u.host.RemoveAll(ctx, u.snapshot); err != nil {
		return fmt.Errorf("restored %s, but removing the snapshot failed: %w", u.to, err)
	}
	return nil
}

// Commit discards the snapshot: the deploy stands.
func (u *remoteRsyncUndo) Commit(ctx context.Context) error {
	if err := u.host.RemoveAll(ctx, u.snapshot); err != nil {
		return fmt.Errorf("remove snapshot of %s%s: %w", u.to, where(u.host), err)
	}
	return nil
}

// Record implements executor.Recordable, as the local undo's.
func (u *remoteRsyncUndo) Record() executor.UndoRecord {
	r := (&rsyncUndo{to: u.to, snapshot: u.snapshot, exclude: u.exclude, complete: true}).Record()
	return r
}

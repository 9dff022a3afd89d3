package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// releaseFS is every file system operation of the release steps, their
// undo and `rollout releases`/`rollback`: the machine rollout runs on
// (localFS, Go calls) or a host of the plan (hostFS, one sh script per
// operation over the host's shared ssh connection). The layout and its
// guarantees are the same on both: `current` is switched by renaming a
// new symlink over it, a release gets its name only when whole.
type releaseFS interface {
	// where is " on HOST", or "" locally, for messages.
	where() string
	readCurrent(ctx context.Context, base string) (string, error)
	switchCurrent(ctx context.Context, base, id string) error
	listReleases(ctx context.Context, base string) ([]releaseInfo, error)
	markBad(ctx context.Context, base, id, reason string) error
	removeRelease(ctx context.Context, base, id string) error
	// isDir says whether path is a directory (following symlinks); an
	// error when it does not exist.
	isDir(ctx context.Context, path string) (bool, error)
	mkdirAll(ctx context.Context, dirs ...string) error
	removeAll(ctx context.Context, path string) error
	// copyIn copies the controller's directory from to dst (which must not
	// exist) on the file system's machine.
	copyIn(ctx context.Context, from, dst string) error
	linkShared(ctx context.Context, base, dir, rel string) error
	// publish makes the copy at partial durable and renames it to final,
	// then makes the rename durable. renamed says whether final exists.
	publish(ctx context.Context, partial, final string) (renamed bool, err error)
}

// releaseFSOn is the release file system of h (nil or Local: where
// rollout runs).
func releaseFSOn(h Host) releaseFS {
	if h == nil || h.Name() == "" {
		return localFS{}
	}
	return hostFS{h: h}
}

// fsTimeout bounds a file system operation that has no context of its
// own (InFlightRecord): a host that stops answering must not hang a run.
const fsTimeout = 30 * time.Second

// localFS is the machine rollout runs on.
type localFS struct{}

func (localFS) where() string { return "" }
func (localFS) readCurrent(_ context.Context, base string) (string, error) {
	return readCurrent(base)
}
func (localFS) switchCurrent(_ context.Context, base, id string) error {
	return switchCurrent(base, id)
}
func (localFS) listReleases(_ context.Context, base string) ([]releaseInfo, error) {
	return listReleases(base)
}
func (localFS) markBad(_ context.Context, base, id, reason string) error {
	return markBad(base, id, reason)
}
func (localFS) removeRelease(_ context.Context, base, id string) error {
	return removeRelease(base, id)
}
func (localFS) isDir(_ context.Context, path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}
func (localFS) mkdirAll(_ context.Context, dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}
func (localFS) removeAll(_ context.Context, path string) error { return os.RemoveAll(path) }
func (localFS) copyIn(ctx context.Context, from, dst string) error {
	return copyTree(ctx, from, dst)
}
func (localFS) linkShared(_ context.Context, base, dir, rel string) error {
	return linkShared(base, dir, rel)
}
func (localFS) publish(_ context.Context, partial, final string) (bool, error) {
	// The files reach the disk before anything points at them.
	if err := syncFS(partial); err != nil {
		return false, fmt.Errorf("sync %s: %w", partial, err)
	}
	if err := os.Rename(partial, final); err != nil {
		return false, err
	}
	return true, syncDir(filepath.Dir(final))
}

// hostFS is a host of the plan. Each operation is one sh script run with
// its paths as arguments ($1, ...), never spliced into the script, so a
// path with quotes or spaces is safe; ssh quotes every argument (Host.Run).
// A script reports a problem of the layout (not a symlink, a missing
// shared path) on stderr with exit 3, which becomes the error's text.
type hostFS struct{ h Host }

func (f hostFS) where() string { return where(f.h) }

// run runs script on the host with args and returns its stdout.
func (f hostFS) run(ctx context.Context, script string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	argv := append([]string{"sh", "-c", script, "sh"}, args...)
	err := f.h.Run(ctx, Cmd{Argv: argv, Stdout: &out, Stderr: &errb})
	if err == nil {
		return out.String(), nil
	}
	msg := strings.TrimSpace(errb.String())
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 3 && msg != "":
		return out.String(), errors.New(msg)
	case strings.Contains(msg, "No such file or directory"):
		return out.String(), fmt.Errorf("%s%s: %w", msg, f.where(), fs.ErrNotExist)
	case msg != "":
		return out.String(), fmt.Errorf("%w%s: %s", err, f.where(), msg)
	}
	return out.String(), fmt.Errorf("%w%s", err, f.where())
}

func (f hostFS) readCurrent(ctx context.Context, base string) (string, error) {
	link := filepath.Join(base, currentLink)
	out, err := f.run(ctx, `if [ -L "$1" ]; then exec readlink -- "$1"; fi
if [ -e "$1" ]; then stat -c %F -- "$1"; exit 4; fi`, link)
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() == 4 {
			return "", fmt.Errorf("%s%s is not a symlink (it is a %s): move it into %s/ as a release, or remove it", link, f.where(), strings.TrimSpace(out), filepath.Join(base, releasesDir))
		}
		return "", fmt.Errorf("read %s: %w", link, err)
	}
	target := strings.TrimSuffix(out, "\n")
	if target == "" {
		return "", nil
	}
	return currentID(base, target)
}

const switchScript = `set -e
cd -- "$1"
if [ -e current ] && [ ! -L current ]; then
  echo "$1/current is a $(stat -c %F current), not a symlink: move it into $1/releases/ as a release, or remove it" >&2; exit 3
fi
if [ -z "$2" ]; then rm -f current
else
  t=".current.tmp-$$"
  rm -f -- "$t"
  ln -s -- "$2" "$t"
  mv -T -- "$t" current
fi
sync -f . 2>/dev/null || sync`

func (f hostFS) switchCurrent(ctx context.Context, base, id string) error {
	target := ""
	if id != "" {
		target = linkTarget(id)
	}
	if _, err := f.run(ctx, switchScript, base, target); err != nil {
		return fmt.Errorf("switch %s: %w", filepath.Join(base, currentLink), err)
	}
	return nil
}

// listScript prints "D\tNAME" for each directory of releases/ and
// "B\tID\tREASON" for each marker, its reason on one line.
const listScript = `d="$1/releases"
[ -d "$d" ] || exit 0
find "$d" -mindepth 1 -maxdepth 1 -type d -printf 'D\t%f\n'
find "$d" -mindepth 1 -maxdepth 1 -type f -name '*.bad' -printf '%f\n' | while IFS= read -r m; do
  printf 'B\t%s\t%s\n' "${m%.bad}" "$(head -c 4096 -- "$d/$m" | tr '\t\n' '  ')"
done`

func (f hostFS) listReleases(ctx context.Context, base string) ([]releaseInfo, error) {
	out, err := f.run(ctx, listScript, base)
	if err != nil {
		return nil, err
	}
	bad := map[string]string{}
	var rels []releaseInfo
	for _, line := range strings.Split(out, "\n") {
		kind, rest, _ := strings.Cut(line, "\t")
		switch kind {
		case "D":
			if validReleaseID(rest) {
				rels = append(rels, releaseInfo{ID: rest})
			}
		case "B":
			id, reason, _ := strings.Cut(rest, "\t")
			if reason = strings.TrimSpace(reason); reason == "" {
				reason = "marked bad"
			}
			bad[id] = reason
		}
	}
	sort.Slice(rels, func(i, j int) bool { return rels[i].ID < rels[j].ID })
	for i := range rels {
		rels[i].Bad = bad[rels[i].ID]
	}
	return rels, nil
}

func (f hostFS) markBad(ctx context.Context, base, id, reason string) error {
	return f.h.WriteFile(ctx, releasePath(base, id)+badSuffix, []byte(reason+"\n"), FileInfo{Mode: 0o644, UID: -1, GID: -1})
}

func (f hostFS) removeRelease(ctx context.Context, base, id string) error {
	if !validReleaseID(id) {
		return fmt.Errorf("refusing to remove %q: not a release id", id)
	}
	p := releasePath(base, id)
	_, err := f.run(ctx, `exec rm -rf -- "$1" "$2" "$3"`, partialPath(base, id), p, p+badSuffix)
	return err
}

func (f hostFS) isDir(ctx context.Context, path string) (bool, error) {
	fi, err := statFollow(ctx, f.h, path)
	if err != nil {
		return false, err
	}
	return fi.Mode.IsDir(), nil
}

func (f hostFS) mkdirAll(ctx context.Context, dirs ...string) error {
	_, err := f.run(ctx, `exec mkdir -p -- "$@"`, dirs...)
	return err
}

func (f hostFS) removeAll(ctx context.Context, path string) error { return f.h.RemoveAll(ctx, path) }

// copyIn uploads with rsync over the host's connection; rsync creates dst
// (its parent, releases/, exists).
func (f hostFS) copyIn(ctx context.Context, from, dst string) error {
	var out bytes.Buffer
	if err := f.h.Upload(ctx, nil, from, dst, &out); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// linkSharedScript is linkShared's logic in sh: $1 base, $2 the release
// directory, $3 the shared path relative to both.
const linkSharedScript = `set -e
shared="$1/shared/$3"; in="$2/$3"
p=$(dirname -- "$3")
while [ "$p" != . ] && [ "$p" != / ]; do
  if [ -L "$2/$p" ]; then
    echo "shared path \"$3\" goes through $p, a symlink in the release: link the symlink's own path instead, or remove it from the build" >&2; exit 3
  fi
  p=$(dirname -- "$p")
done
if [ ! -e "$shared" ] && [ ! -L "$shared" ]; then
  if [ ! -e "$in" ] && [ ! -L "$in" ]; then
    echo "shared path \"$3\" exists neither in $1/shared nor in the release: create it (mkdir -p $shared, or put the file there)" >&2; exit 3
  fi
  mkdir -p -- "$(dirname -- "$shared")"
  mv -T -- "$in" "$shared"
fi
rm -rf -- "$in"
mkdir -p -- "$(dirname -- "$in")"
ln -s -- "$(realpath -m -s --relative-to="$(dirname -- "$in")" -- "$shared")" "$in"`

func (f hostFS) linkShared(ctx context.Context, base, dir, rel string) error {
	_, err := f.run(ctx, linkSharedScript, base, dir, filepath.ToSlash(rel))
	return err
}

const publishScript = `set -e
sync -f "$1" 2>/dev/null || sync
mv -T -- "$1" "$2"
sync -f "$(dirname -- "$2")" 2>/dev/null || sync`

func (f hostFS) publish(ctx context.Context, partial, final string) (bool, error) {
	_, err := f.run(ctx, publishScript, partial, final)
	if err == nil {
		return true, nil
	}
	// Whether the rename happened decides what the undo removes; ask.
	if ok, serr := f.isDir(ctx, final); serr == nil && ok {
		return true, err
	}
	return false, err
}

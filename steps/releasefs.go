package steps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The release layout, as Capistrano and Deployer lay it out:
//
//	BASE/releases/ID/     one directory per release, ID sortable (UTC time first)
//	BASE/releases/ID.bad  marker: `rollout rollback` left this release; skip it
//	BASE/shared/PATH      what every release links to (uploads, .env, ...)
//	BASE/current          symlink to releases/ID: what the service runs
//
// Every filesystem operation of the release steps goes through the few
// functions of this file, so that a remote host can implement them once.

const (
	releasesDir   = "releases"
	sharedDir     = "shared"
	currentLink   = "current"
	badSuffix     = ".bad"
	partialPrefix = "." // releases/.ID.partial while it is being copied
	partialSuffix = ".partial"
)

// newReleaseID returns a release id that sorts by creation time: the UTC
// time to the second and a random suffix, in the format of run ids
// ("20261130T224151Z-a1b2c3").
func newReleaseID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// validReleaseID says whether id can name a release directory: one path
// element, not hidden, not a marker.
func validReleaseID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\x00") &&
		!strings.HasPrefix(id, ".") && !strings.HasSuffix(id, badSuffix)
}

func releasePath(base, id string) string { return filepath.Join(base, releasesDir, id) }

func partialPath(base, id string) string {
	return filepath.Join(base, releasesDir, partialPrefix+id+partialSuffix)
}

// linkTarget is what `current` holds for release id: relative, so that the
// base directory can be moved or mounted elsewhere.
func linkTarget(id string) string { return releasesDir + "/" + id }

// readCurrent returns the release id `current` points to; "" when there is
// no `current` yet. A `current` that is not a symlink into releases/ is an
// error: rollout does not own it.
func readCurrent(base string) (string, error) {
	link := filepath.Join(base, currentLink)
	target, err := os.Readlink(link)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		if fi, serr := os.Lstat(link); serr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return "", fmt.Errorf("%s is not a symlink (it is a %s): move it into %s/ as a release, or remove it", link, kindOf(fi.Mode()), filepath.Join(base, releasesDir))
		}
		return "", fmt.Errorf("read %s: %w", link, err)
	}
	return currentID(base, target)
}

// currentID is the release id of `current`'s target, which must be a
// release in base's releases/.
func currentID(base, target string) (string, error) {
	link := filepath.Join(base, currentLink)
	t := filepath.ToSlash(filepath.Clean(target))
	if filepath.IsAbs(target) {
		rel, err := filepath.Rel(base, target)
		if err != nil {
			return "", fmt.Errorf("%s points to %s, outside %s", link, target, filepath.Join(base, releasesDir))
		}
		t = filepath.ToSlash(rel)
	}
	id, ok := strings.CutPrefix(t, releasesDir+"/")
	if !ok || !validReleaseID(id) {
		return "", fmt.Errorf("%s points to %s, which is not a release in %s", link, target, filepath.Join(base, releasesDir))
	}
	return id, nil
}

// switchCurrent points `current` at release id ("" removes `current`),
// atomically: a symlink under a temporary name, renamed over `current`
// (rename(2) replaces the old link in one step, so there is never a moment
// without one), then the directory is synced so that after a crash the
// link is either the old or the new one.
func switchCurrent(base, id string) error {
	link := filepath.Join(base, currentLink)
	if id == "" {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return syncDir(base)
	}
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s is a %s, not a symlink: move it into %s/ as a release, or remove it", link, kindOf(fi.Mode()), filepath.Join(base, releasesDir))
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(base, ".current.tmp-"+hex.EncodeToString(b[:]))
	if err := os.Symlink(linkTarget(id), tmp); err != nil {
		return fmt.Errorf("switch %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("switch %s: %w", link, err)
	}
	return syncDir(base)
}

// releaseInfo is one release directory.
type releaseInfo struct {
	ID  string
	Bad string // the marker's text; "" when the release is not marked bad
}

// listReleases returns the releases under base, oldest first. Partial
// copies, markers and stray files are not releases.
func listReleases(base string) ([]releaseInfo, error) {
	dir := filepath.Join(base, releasesDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	bad := map[string]string{}
	var out []releaseInfo
	for _, e := range entries {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, badSuffix); ok && !e.IsDir() {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			reason := strings.TrimSpace(string(b))
			if reason == "" {
				reason = "marked bad"
			}
			bad[id] = reason
			continue
		}
		if e.IsDir() && validReleaseID(name) {
			out = append(out, releaseInfo{ID: name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := range out {
		out[i].Bad = bad[out[i].ID]
	}
	return out, nil
}

// markBad writes the marker that makes `rollout rollback` skip release id.
func markBad(base, id, reason string) error {
	path := releasePath(base, id) + badSuffix
	if err := os.WriteFile(path, []byte(reason+"\n"), 0o644); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// removeRelease deletes release id with its marker and any partial copy.
func removeRelease(base, id string) error {
	if !validReleaseID(id) {
		return fmt.Errorf("refusing to remove %q: not a release id", id)
	}
	err := errors.Join(
		os.RemoveAll(partialPath(base, id)),
		os.RemoveAll(releasePath(base, id)),
	)
	if rerr := os.Remove(releasePath(base, id) + badSuffix); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// copyTree copies the directory src to dst (which must not exist) in Go,
// without an external program: directories, regular files with their
// modes and modification times, and symlinks as symlinks (never followed).
// As root it keeps owners too. Devices, sockets and pipes are refused.
// A cancelled ctx stops the copy between files (a second Ctrl-C during a
// large release).
func copyTree(ctx context.Context, src, dst string) error {
	root := os.Geteuid() == 0
	type dirMode struct {
		path  string
		mode  fs.FileMode
		mtime time.Time
	}
	var dirs []dirMode
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		switch {
		case mode.IsDir():
			// Owner-writable while its contents are copied; the real
			// mode is set afterwards, deepest first.
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{target, mode.Perm() | mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), fi.ModTime()})
		case mode&fs.ModeSymlink != 0:
			dest, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(dest, target); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := copyFile(p, target, mode); err != nil {
				return err
			}
			if err := os.Chtimes(target, fi.ModTime(), fi.ModTime()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s is a %s: a release holds only directories, files and symlinks", p, kindOf(mode))
		}
		if root {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for k := len(dirs) - 1; k >= 0; k-- {
		d := dirs[k]
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
		if err := os.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	// Chmod after writing: the umask must not narrow the mode, and setuid
	// bits survive only a chmod made after the last write.
	if err := out.Chmod(mode.Perm() | mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// linkShared replaces path rel inside the release directory dir with a
// symlink to BASE/shared/rel. When shared/rel does not exist yet, the
// release's own copy (if it has one) moves there: the first deploy seeds
// shared/. When neither exists the deploy is refused: a missing .env or
// uploads directory is for a person to create, not to be made up empty.
func linkShared(base, dir, rel string) error {
	shared := filepath.Join(base, sharedDir, rel)
	inRelease := filepath.Join(dir, rel)
	// A symlink on the way (the build's storage -> /var/lib/x) would make
	// the removal below act outside the release.
	for p := filepath.Dir(rel); p != "." && p != string(filepath.Separator); p = filepath.Dir(p) {
		if fi, err := os.Lstat(filepath.Join(dir, p)); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("shared path %q goes through %s, a symlink in the release: link the symlink's own path instead, or remove it from the build", rel, p)
		}
	}
	if _, err := os.Lstat(shared); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Lstat(inRelease); err != nil {
			return fmt.Errorf("shared path %q exists neither in %s nor in the release: create it (mkdir -p %s, or put the file there)", rel, filepath.Join(base, sharedDir), shared)
		}
		if err := os.MkdirAll(filepath.Dir(shared), 0o755); err != nil {
			return err
		}
		if err := os.Rename(inRelease, shared); err != nil {
			return fmt.Errorf("seed %s from the release: %w", shared, err)
		}
	} else if err != nil {
		return err
	}
	if err := os.RemoveAll(inRelease); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(inRelease), 0o755); err != nil {
		return err
	}
	target, err := filepath.Rel(filepath.Dir(inRelease), shared)
	if err != nil {
		target = shared
	}
	return os.Symlink(target, inRelease)
}

// syncFS flushes the filesystem that holds path: one syncfs(2) makes a
// whole copied release durable before `current` points to it.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// syncDir makes a rename, link or removal in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}

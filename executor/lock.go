package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrLocked is matched (errors.Is) by the error AcquireLock returns when
// another run holds the lock.
var ErrLocked = errors.New("rollout lock is held")

// LockHolder is written into the lock file by the run that holds it, so that
// a second run can say who is in the way.
type LockHolder struct {
	PID     int       `json:"pid"`
	RunID   string    `json:"run_id"`
	Plan    string    `json:"plan"`
	User    string    `json:"user,omitempty"`
	Host    string    `json:"host,omitempty"`
	Started time.Time `json:"started"`
	// Journals is the directory the holder writes its crash journal to:
	// the next holder looks there too, so a journal is found even when
	// the two runs' environments name different state directories.
	Journals string `json:"journals,omitempty"`
}

// LockedError says that another run holds the lock, and who. Holder is nil
// when the lock file could not be read or parsed (its holder may be writing it).
type LockedError struct {
	Path   string
	Holder *LockHolder
	// Age is how long ago the holder started, when known.
	Age time.Duration
}

func (e *LockedError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("another rollout run holds %s (holder unknown)", e.Path)
	}
	h := e.Holder
	s := fmt.Sprintf("another rollout run holds %s: pid %d, run %s, plan %q", e.Path, h.PID, h.RunID, h.Plan)
	if h.User != "" {
		s += ", user " + h.User
	}
	if h.Host != "" {
		s += ", host " + h.Host
	}
	if !h.Started.IsZero() {
		s += ", started " + agoText(e.Age)
	}
	return s
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// agoText renders a duration the way a person says it: "45s ago", "3m ago",
// "2h5m ago".
func agoText(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m ago"
	}
	h := int(d / time.Hour)
	m := int((d % time.Hour) / time.Minute)
	if m == 0 {
		return strconv.Itoa(h) + "h ago"
	}
	return fmt.Sprintf("%dh%dm ago", h, m)
}

// Lock is a held run lock.
type Lock struct {
	f *os.File
	// Previous is the holder the file named before this one (nil when
	// unknown): a run that died still names its journal directory there.
	Previous *LockHolder
}

// AcquireLock takes the single-run lock at path with flock(LOCK_EX|LOCK_NB)
// and writes holder into it. It never waits: when another run holds the
// lock, it fails at once with a *LockedError naming that run. The kernel
// drops the lock when the process dies, so a crashed run never leaves a
// stale lock behind.
func AcquireLock(path string, holder LockHolder) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	// 0644: other users may read who holds the lock.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, lockedError(path, f)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	var prev *LockHolder
	if old, err := io.ReadAll(io.LimitReader(f, 64<<10)); err == nil {
		var h LockHolder
		if json.Unmarshal(old, &h) == nil {
			prev = &h
		}
	}
	l := &Lock{f: f, Previous: prev}
	if err := l.setHolder(holder); err != nil {
		_ = flock(f, syscall.LOCK_UN)
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: write holder: %w", path, err)
	}
	return l, nil
}

// setHolder rewrites the holder in the held lock's file.
func (l *Lock) setHolder(holder LockHolder) error {
	data, err := json.Marshal(holder)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err = l.f.WriteAt(data, 0)
	return err
}

func lockedError(path string, f *os.File) error {
	lerr := &LockedError{Path: path}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return lerr
	}
	var h LockHolder
	if json.Unmarshal(data, &h) != nil {
		return lerr
	}
	lerr.Holder = &h
	if !h.Started.IsZero() {
		lerr.Age = time.Since(h.Started)
	}
	return lerr
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// Release unlocks and closes the lock file. The file stays: removing it
// would let a waiting run lock an unlinked inode while a third creates a
// new file.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := flock(l.f, syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// DefaultLockPath is the lock of the system manager (/run/rollout/lock) or,
// with user, of the user manager reached through the session bus; see
// StatePathsFor.
func DefaultLockPath(user bool) string {
	return DefaultStatePaths(user).Lock
}

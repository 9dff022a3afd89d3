package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// LocalMachine answers the executor's preflight about this machine, where
// every step runs today. sd may be nil (a dry run that cannot reach
// systemd): units are then not checked.
type LocalMachine struct {
	Systemd Backend
	// Unreachable, with Systemd nil, says why systemd could not be asked.
	Unreachable error
}

var _ executor.Machine = LocalMachine{}

// Where names this machine in messages.
func (LocalMachine) Where() string { return "this machine" }

// LookPath finds p as the exec and rsync steps would run it: a bare name
// on PATH, a path as it is, a relative one inside p.Dir.
func (LocalMachine) LookPath(p planner.Program) error {
	if !strings.Contains(p.Name, "/") {
		if _, err := exec.LookPath(p.Name); err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				return errors.New("not found on PATH")
			}
			return err
		}
		return nil
	}
	path := p.Name
	if !filepath.IsAbs(path) && p.Dir != "" {
		path = filepath.Join(p.Dir, path)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("no such file")
	case err != nil:
		return err
	case fi.IsDir():
		return errors.New("is a directory, not a program")
	case fi.Mode()&0o111 == 0:
		return errors.New("is not executable")
	}
	return nil
}

// Dir describes the directory at path.
func (LocalMachine) Dir(path string) (executor.DirInfo, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return executor.DirInfo{}, nil
	}
	if err != nil {
		return executor.DirInfo{}, err
	}
	info := executor.DirInfo{Exists: true, IsDir: fi.IsDir()}
	if !info.IsDir {
		return info, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); errors.Is(err, io.EOF) {
		info.Empty = true
	} else if err != nil {
		return info, err
	}
	return info, nil
}

// FreeSpace returns the bytes available to an unprivileged user on path's
// filesystem (statfs f_bavail, as df shows), and the filesystem's device.
func (LocalMachine) FreeSpace(path string) (int64, string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, "", err
	}
	var dev string
	if fi, err := os.Stat(path); err == nil {
		if s, ok := fi.Sys().(*syscall.Stat_t); ok {
			dev = fmt.Sprint(s.Dev)
		}
	}
	if dev == "" {
		dev = path
	}
	return int64(st.Bavail) * int64(st.Bsize), dev, nil
}

// Unit reads the unit's load state and whether its file changed on disk
// since systemd loaded it.
func (m LocalMachine) Unit(ctx context.Context, name string) (executor.UnitInfo, error) {
	if m.Systemd == nil {
		if m.Unreachable != nil {
			return executor.UnitInfo{}, fmt.Errorf("%w: %v", executor.ErrUnitsUnknown, m.Unreachable)
		}
		return executor.UnitInfo{}, executor.ErrUnitsUnknown
	}
	// Only what UnitInfo holds: preflight reads every unit of the plan
	// before the run starts, through a manager that answers one call at
	// a time. The unit file's path is read only to name a changed file.
	st, err := statusOf(ctx, m.Systemd, name, FieldNeedDaemonReload)
	if err != nil {
		return executor.UnitInfo{}, err
	}
	if st.NeedDaemonReload {
		if full, err := statusOf(ctx, m.Systemd, name, FieldFragmentPath|FieldNeedDaemonReload); err == nil {
			st = full
		}
	}
	return executor.UnitInfo{LoadState: st.LoadState, FragmentPath: st.FragmentPath, NeedDaemonReload: st.NeedDaemonReload}, nil
}

// HostMachine answers preflight about a host of the plan. Its units are
// read from the host's manager and its programs looked up there. Paths
// are not checked on hosts: preflight asks one machine about both ends of
// a copy, and an rsync's source is on the controller while its target is
// on the host; the steps check both when they run (an empty source is
// refused there too).
type HostMachine struct {
	Host Host
}

var _ executor.Machine = HostMachine{}

// Where names the host in messages.
func (m HostMachine) Where() string { return "host " + m.Host.Name() }

// LookPath finds a program as the host's shell would.
func (m HostMachine) LookPath(p planner.Program) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script := `command -v -- "$1" >/dev/null`
	if strings.Contains(p.Name, "/") {
		script = `cd -- "${2:-/}" && test -f "$1" && test -x "$1"`
	}
	if _, err := output(ctx, m.Host, "sh", "-c", script, "sh", p.Name, p.Dir); err != nil {
		var hostErr *HostError
		if errors.As(err, &hostErr) {
			// A host that cannot be reached is not a missing program:
			// its instances fail when they run, naming the host, and
			// the other hosts follow the failure policy.
			return nil
		}
		return errors.New("not found on the host")
	}
	return nil
}

// Dir is not checked on hosts (see HostMachine).
func (HostMachine) Dir(string) (executor.DirInfo, error) {
	return executor.DirInfo{Exists: true, IsDir: true}, nil
}

// FreeSpace is not checked on hosts: it reports no limit.
func (m HostMachine) FreeSpace(string) (int64, string, error) {
	return math.MaxInt64, "host " + m.Host.Name(), nil
}

// Unit reads the unit from the host's manager. A manager that cannot be
// reached leaves the unit unchecked (preflight warns): the instance fails
// when it runs, naming the host, as when the host goes down mid-run.
func (m HostMachine) Unit(ctx context.Context, name string) (executor.UnitInfo, error) {
	info, err := LocalMachine{Systemd: m.Host.Systemd()}.Unit(ctx, name)
	if err != nil && !errors.Is(err, ErrNoSuchUnit) {
		return info, fmt.Errorf("%w: %v", executor.ErrUnitsUnknown, err)
	}
	return info, err
}

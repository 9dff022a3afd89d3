package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Host is the machine a step acts on, as Packer's communicator is: run a
// program, read and write a file, copy a directory from the controller,
// reach systemd. Every step goes through it and never knows which
// implementation it holds: Local (where rollout runs) or SSH (a host of
// the plan, over the user's own ssh). Implementations are safe for
// concurrent use.
type Host interface {
	// Name is the host's name in the plan, "" for the local machine.
	Name() string
	// Run runs c.Argv on the host, never through a shell of ours: an
	// implementation that needs one (ssh) quotes every element itself.
	// A non-zero exit is an *exec.ExitError.
	Run(ctx context.Context, c Cmd) error
	// Stat describes path without following a final symlink (lstat).
	Stat(ctx context.Context, path string) (FileInfo, error)
	// Realpath resolves every symlink in path.
	Realpath(ctx context.Context, path string) (string, error)
	// ReadFile returns the file's bytes and its mode and owner.
	ReadFile(ctx context.Context, path string) ([]byte, FileInfo, error)
	// WriteFile replaces path atomically (a temporary file beside it,
	// renamed over it) with data, mode and owner from info.
	WriteFile(ctx context.Context, path string, data []byte, info FileInfo) error
	// RemoveAll removes path and everything under it.
	RemoveAll(ctx context.Context, path string) error
	// Upload mirrors the controller's directory src into dir on the host
	// with rsync (`rsync -a OPTS src/ dst/`), output to out.
	Upload(ctx context.Context, opts []string, src, dst string, out io.Writer) error
	// Systemd is the host's systemd manager.
	Systemd() Backend
}

// Cmd is a program to run on a host.
type Cmd struct {
	Argv   []string
	Dir    string   // "" = the default (local: ours; ssh: the login directory)
	Env    []string // KEY=VALUE added to the environment
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// FileInfo is what steps need to know of a file.
type FileInfo struct {
	Mode     fs.FileMode // type and permission bits
	UID, GID int
}

// ErrNotExist is returned (wrapped) by Stat and ReadFile for a missing file,
// on every host.
var ErrNotExist = fs.ErrNotExist

// Local is the machine rollout runs on.
type Local struct {
	// SD is the local systemd manager; nil when none is reachable.
	SD Backend
}

func (Local) Name() string { return "" }

func (l Local) Systemd() Backend { return l.SD }

// Run starts the command in its own process group; cancelling ctx kills
// the whole group: `npx prisma migrate` and the like leave children that
// would otherwise keep running and hold the output pipe open.
func (Local) Run(ctx context.Context, c Cmd) error {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin = c.Stdin
	cmd.Stdout = c.Stdout
	cmd.Stderr = c.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd.Run()
}

func (Local) Stat(_ context.Context, path string) (FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return FileInfo{}, err
	}
	return localInfo(fi), nil
}

func localInfo(fi fs.FileInfo) FileInfo {
	info := FileInfo{Mode: fi.Mode(), UID: -1, GID: -1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.UID, info.GID = int(st.Uid), int(st.Gid)
	}
	return info
}

func (Local) Realpath(_ context.Context, path string) (string, error) {
	return filepath.EvalSymlinks(path)
}

func (Local) ReadFile(_ context.Context, path string) ([]byte, FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, FileInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, FileInfo{}, err
	}
	data, err := io.ReadAll(f)
	return data, localInfo(fi), err
}

// WriteFile writes a temporary file beside path and renames it over path,
// so that a crash never leaves a half-written file, and a symlink at path
// is replaced rather than followed.
func (Local) WriteFile(_ context.Context, path string, data []byte, info FileInfo) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if info.UID >= 0 && info.GID >= 0 {
		if err = os.Lchown(tmp.Name(), info.UID, info.GID); err != nil {
			return fmt.Errorf("keep owner of %s: %w", path, err)
		}
	}
	// Chmod after chown: chown clears setuid/setgid bits.
	if err = tmp.Chmod(info.Mode.Perm()); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (Local) RemoveAll(_ context.Context, path string) error { return os.RemoveAll(path) }

func (l Local) Upload(ctx context.Context, opts []string, src, dst string, out io.Writer) error {
	argv := append([]string{"rsync", "-a"}, opts...)
	argv = append(argv, dirArg(src), dirArg(dst))
	return l.Run(ctx, Cmd{Argv: argv, Stdout: out, Stderr: out})
}

// copyFileOn copies src to dst on h atomically with src's mode and owner.
func copyFileOn(ctx context.Context, h Host, src, dst string) error {
	data, info, err := h.ReadFile(ctx, src)
	if err != nil {
		return err
	}
	return h.WriteFile(ctx, dst, data, info)
}

// output runs c on h and returns its stdout; stderr goes into the error.
func output(ctx context.Context, h Host, argv ...string) (string, error) {
	var out, errb bytes.Buffer
	err := h.Run(ctx, Cmd{Argv: argv, Stdout: &out, Stderr: &errb})
	if err != nil {
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			return out.String(), fmt.Errorf("%w: %s", err, msg)
		}
		return out.String(), err
	}
	return out.String(), nil
}

// where names the host in messages: " on HOST", or "" locally.
func where(h Host) string {
	if h == nil || h.Name() == "" {
		return ""
	}
	return " on " + h.Name()
}

// hostBackend is a host's systemd Backend that knows its host, so that a
// health check's exec probe, which is handed only the backend, runs on the
// host the unit runs on.
type hostBackend struct {
	Backend
	host Host
}

// hostOfBackend returns the host of a hostBackend, else nil (local).
func hostOfBackend(sd Backend) Host {
	if hb, ok := sd.(*hostBackend); ok {
		return hb.host
	}
	return nil
}

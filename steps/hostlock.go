package steps

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// HostLockPath is where a run's lock lives on h: beside the bus of a user
// manager (its runtime directory), else /run/lock for the system manager.
// The lock guards the manager, as the controller's own lock does.
func HostLockPath(h *planner.Host) string {
	if p, ok := strings.CutPrefix(h.SystemdBus, "unix:path="); ok && strings.HasPrefix(p, "/") {
		if i := strings.IndexByte(p, ','); i >= 0 {
			p = p[:i]
		}
		return path.Join(path.Dir(p), "rollout.lock")
	}
	return "/run/lock/rollout.lock"
}

// lockScript holds flock(1) on $1 for as long as its stdin is open: the
// lock belongs to the ssh session, so it goes when the controller or its
// connection dies (sshd ends the session and the shell with it). The
// holder ($2, JSON) is written beside the lock for a run that finds it
// taken.
const lockScript = `exec 9>>"$1" || exit 3
if flock -n 9; then
  printf '%s\n' "$2" >"$1.holder"
  echo LOCKED
  exec cat >/dev/null
fi
echo HELD
cat -- "$1.holder" 2>/dev/null
exit 0`

// hostLock is one held lock: the ssh session that holds it.
type hostLock struct {
	stdin io.WriteCloser
	done  chan struct{}
}

func (l *hostLock) release() {
	l.stdin.Close()
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
	}
}

// errHeld is a lock taken by another run; holder is its JSON.
type errHeld struct{ holder string }

func (e *errHeld) Error() string { return "held" }

// tryLock tries once to take the run lock on the host.
func (x *SSH) tryLock(ctx context.Context, holder string) (*hostLock, error) {
	x.ensureMaster()
	lockPath := HostLockPath(x.host)
	line := RemoteLine(Cmd{Argv: []string{"sh", "-c", lockScript, "sh", lockPath, holder}}, 0)
	args := append(x.baseArgs(), "-o", "ControlMaster=no", "--", x.host.Address, line)
	cmd := exec.Command(x.cfg.Program, args...)
	// The session ends with rollout, even after a SIGKILL: the host then
	// releases the lock.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	type answer struct {
		first, rest string
	}
	got := make(chan answer, 1)
	go func() {
		r := bufio.NewReader(stdout)
		first, _ := r.ReadString('\n')
		var rest string
		if strings.TrimSpace(first) == "HELD" {
			b, _ := io.ReadAll(r)
			rest = string(b)
		}
		got <- answer{strings.TrimSpace(first), strings.TrimSpace(rest)}
		io.Copy(io.Discard, r)
	}()
	go func() { cmd.Wait(); close(done) }()
	var a answer
	select {
	case a = <-got:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return nil, ctx.Err()
	}
	switch a.first {
	case "LOCKED":
		return &hostLock{stdin: stdin, done: done}, nil
	case "HELD":
		stdin.Close()
		<-done
		return nil, &errHeld{holder: a.rest}
	}
	stdin.Close()
	<-done
	msg := strings.TrimSpace(stderr.String())
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 255 {
		return nil, &HostError{Host: x.host.Name, Err: fmt.Errorf("ssh: %s", msg)}
	}
	return nil, fmt.Errorf("host %s: cannot take the lock %s: %s", x.host.Name, lockPath, msg)
}

// Lock takes the run lock on every host, all at once. A host held by
// another run fails the whole call at once naming the holder, or after
// wait when wait > 0 (retrying until then); a host that cannot be reached
// is left unlocked, since its instances will fail on it anyway, naming it.
// release frees every lock taken.
func (s *HostSet) Lock(ctx context.Context, hosts []*planner.Host, holder executor.LockHolder, wait time.Duration, unreachable func(host string, err error)) (release func(), err error) {
	data, _ := json.Marshal(holder)
	var (
		mu    sync.Mutex
		held  []*hostLock
		errs  []error
		wg    sync.WaitGroup
		until = time.Now().Add(wait)
	)
	for _, h := range hosts {
		x := s.SSH(h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				l, err := x.tryLock(ctx, string(data))
				var he *errHeld
				var hostErr *HostError
				switch {
				case err == nil:
					mu.Lock()
					held = append(held, l)
					mu.Unlock()
					return
				case errors.As(err, &he) && time.Now().Before(until):
					select {
					case <-ctx.Done():
					case <-time.After(250 * time.Millisecond):
						continue
					}
					err = ctx.Err()
				case errors.As(err, &he):
					err = heldError(h, he.holder)
				case errors.As(err, &hostErr):
					if unreachable != nil {
						unreachable(h.Name, err)
					}
					return
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	release = func() {
		var rw sync.WaitGroup
		for _, l := range held {
			rw.Add(1)
			go func() { defer rw.Done(); l.release() }()
		}
		rw.Wait()
	}
	if len(errs) > 0 {
		release()
		return func() {}, errors.Join(errs...)
	}
	return release, nil
}

// heldError names the run holding the lock on h.
func heldError(h *planner.Host, holderJSON string) error {
	e := &executor.LockedError{Path: fmt.Sprintf("the lock of host %s (%s)", h.Name, HostLockPath(h))}
	var lh executor.LockHolder
	if json.Unmarshal([]byte(holderJSON), &lh) == nil && lh.RunID != "" {
		e.Holder = &lh
		if !lh.Started.IsZero() {
			e.Age = time.Since(lh.Started)
		}
	}
	return e
}

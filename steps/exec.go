package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// defaultExecTimeout bounds a command whose step sets no timeout.
const defaultExecTimeout = 5 * time.Minute

// outputCap is how much of a command's output is kept for its error
// message; the tail is kept because the end says why it failed.
const outputCap = 64 << 10

// errorTailLines is how many of the last output lines an error quotes.
const errorTailLines = 10

// exec runs a command as argv, never through a shell, so that resolved
// paths and names can never be re-interpreted as shell syntax.
func execStepType() planner.StepType {
	return planner.StepType{
		Name: TypeExec,
		Spec: hcldec.ObjectSpec{
			"command":          &hcldec.AttrSpec{Name: "command", Type: cty.List(cty.String), Required: true},
			"dir":              &hcldec.AttrSpec{Name: "dir", Type: cty.String},
			"env":              &hcldec.AttrSpec{Name: "env", Type: cty.Map(cty.String)},
			"timeout":          &hcldec.AttrSpec{Name: "timeout", Type: cty.String},
			"rollback_command": &hcldec.AttrSpec{Name: "rollback_command", Type: cty.List(cty.String)},
		},
		Rollback: "rollback_command if given, else irreversible",
		Validate: validateAll(validateArgv("command"), validateArgv("rollback_command"), validateDurations("timeout")),
		Estimate: timeoutEstimate(defaultExecTimeout),
	}
}

// command is one program to run with its surroundings.
type command struct {
	argv    []string
	dir     string
	env     []string // KEY=VALUE added to os.Environ(), sorted
	timeout time.Duration
}

type execStep struct {
	name     string
	host     Host // nil: where rollout runs
	cmd      command
	rollback []string // nil: irreversible
}

func (b *builder) buildExec(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	argv, _ := r.strList("command")
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("argument \"command\": must name a program")
	}
	c := command{argv: argv, timeout: defaultExecTimeout}
	c.dir, _ = r.str("dir")
	if d, ok := r.duration("timeout"); ok {
		c.timeout = d
	}
	if m, ok := r.strMap("env"); ok {
		for k, v := range m {
			c.env = append(c.env, k+"="+v)
		}
		sort.Strings(c.env)
	}
	s := &execStep{name: step.Name, host: b.host, cmd: c}
	if rb, ok := r.strList("rollback_command"); ok {
		if len(rb) == 0 || rb[0] == "" {
			return nil, errors.New("argument \"rollback_command\": must name a program")
		}
		s.rollback = rb
	}
	return s, nil
}

func (s *execStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	err := runCommand(ctx, env, s.host, s.cmd)
	// A command that failed may have done part of its work (half a
	// migration), so its undo is returned either way.
	return s.undo(), err
}

func (s *execStep) undo() executor.Undo {
	if s.rollback == nil {
		return irreversibleUndo{name: s.name}
	}
	c := s.cmd
	c.argv = s.rollback
	return &commandUndo{host: s.host, cmd: c}
}

// commandUndo runs an exec step's rollback_command.
type commandUndo struct {
	host Host // nil: where rollout runs
	cmd  command
}

func (u *commandUndo) Describe() string { return "run " + formatArgv(u.cmd.argv) + where(u.host) }

func (u *commandUndo) Undo(ctx context.Context, env *executor.Env) error {
	return runCommand(ctx, env, u.host, u.cmd)
}

// irreversibleUndo stands for an exec step without rollback_command: the
// rollback goes on and reports the step as not undone.
type irreversibleUndo struct{ name string }

func (u irreversibleUndo) Describe() string {
	return fmt.Sprintf("nothing: step %q has no rollback_command (irreversible)", u.name)
}

func (u irreversibleUndo) Undo(context.Context, *executor.Env) error {
	return fmt.Errorf("%w: %s has no rollback_command", executor.ErrIrreversible, u.name)
}

// runCommand runs c, forwarding each output line to env.Logf. Its error
// names the command, the exit status or timeout, and the last lines of
// output.
//
// h is where it runs: nil or a local Host runs it here, in a process
// group of its own; a host of the plan runs it there (Host.Run).
func runCommand(ctx context.Context, env *executor.Env, h Host, c command) error {
	if len(c.argv) == 0 || c.argv[0] == "" {
		return errors.New("empty command")
	}
	runCtx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()

	out := &outputLog{logf: func(line string) { logf(env, "%s", line) }}
	if h != nil && h.Name() != "" {
		err := h.Run(runCtx, Cmd{Argv: c.argv, Dir: c.dir, Env: c.env, Stdout: out, Stderr: out})
		out.flush()
		if err == nil {
			return nil
		}
		return commandError(ctx, runCtx, c, formatArgv(c.argv)+where(h), err, out)
	}
	cmd := exec.CommandContext(runCtx, c.argv[0], c.argv[1:]...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout = out
	cmd.Stderr = out
	// The command runs in its own process group and a timeout kills the
	// whole group: `npx prisma migrate` and the like leave children that
	// would otherwise keep running and hold the output pipe open.
	// Pdeathsig kills the command when rollout dies (kill -9 included);
	// the group is journaled too, for what the command started itself,
	// and recovery kills it before it undoes anything.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	// The kernel sends Pdeathsig when the thread that forked the child
	// exits, not the process: this goroutine keeps that thread until the
	// child is gone, so the Go scheduler cannot retire it under the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("command %s: %w", formatArgv(c.argv), err)
	}
	env.ProcessStarted(cmd.Process.Pid)
	err := cmd.Wait()
	out.flush()
	if err == nil {
		return nil
	}
	// A command that failed may have left children in its group (a shell
	// killed, its sleep still running): they must not run on into the
	// rollback that follows.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return commandError(ctx, runCtx, c, formatArgv(c.argv), err, out)
}

// commandError names the command, the exit status or timeout, and the
// last lines of output.
func commandError(ctx, runCtx context.Context, c command, name string, err error, out *outputLog) error {
	var why string
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		// The run was aborted, not the command's own deadline.
		return fmt.Errorf("command %s: %w", name, ctx.Err())
	case runCtx.Err() == context.DeadlineExceeded:
		why = fmt.Sprintf("timed out after %s", c.timeout)
	case errors.As(err, &exitErr):
		if code := exitErr.ExitCode(); code >= 0 {
			why = "exited with status " + strconv.Itoa(code)
		} else {
			why = "ended by " + exitErr.String()
		}
	default:
		// Not started: no such program, dir missing, not executable.
		return fmt.Errorf("command %s: %w", name, err)
	}
	if tail := out.lastLines(errorTailLines); tail != "" {
		return fmt.Errorf("command %s %s; last output:\n%s", name, why, tail)
	}
	return fmt.Errorf("command %s %s (no output)", name, why)
}

// formatArgv renders argv for messages: each element quoted, so that
// spaces and empty arguments stay visible.
func formatArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// outputLog receives a command's stdout and stderr, forwards complete
// lines to logf, and keeps the last outputCap bytes.
type outputLog struct {
	mu      sync.Mutex
	logf    func(line string)
	partial []byte
	tail    []byte
}

func (o *outputLog) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tail = append(o.tail, p...)
	if len(o.tail) > outputCap {
		o.tail = append(o.tail[:0:0], o.tail[len(o.tail)-outputCap:]...)
	}
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.logf(strings.TrimRight(string(o.partial[:i]), "\r"))
		o.partial = o.partial[i+1:]
	}
	// A very long line without a newline is forwarded in pieces rather
	// than held without bound.
	if len(o.partial) > outputCap {
		o.logf(string(o.partial))
		o.partial = nil
	}
	return len(p), nil
}

func (o *outputLog) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.partial) > 0 {
		o.logf(strings.TrimRight(string(o.partial), "\r"))
		o.partial = nil
	}
}

// lastLines returns up to n of the last lines of output.
func (o *outputLog) lastLines(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := strings.TrimRight(string(o.tail), "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r")
	}
	return strings.Join(lines, "\n")
}

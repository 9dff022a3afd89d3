package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/executor"
)

// PromoteOptions are the inputs of `rollout promote`.
type PromoteOptions struct {
	IO    *IOStreams
	RunID string
	Abort bool
	User  bool
	// Dir overrides the promotion directory (tests).
	Dir string
	// Now is time.Now unless a test sets it.
	Now func() time.Time
}

// NewCmdPromote builds `promote`.
func NewCmdPromote(io *IOStreams, runF func(*PromoteOptions) error) *cobra.Command {
	opts := &PromoteOptions{IO: io, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "promote RUN_ID [--abort] [--user]",
		Short: "Promote the canary a run is waiting on, or reject it",
		Long: `Promote the canary of a running run (a service with canary { auto_promote =
false }): after its observation passed, the run waits for a person; this lets
it restart the rest of the service's instances. With --abort the canary is
rejected: the run rolls the canaries back and leaves the rest untouched.

The run prints its id when it starts waiting (and in CANARY_START). Use the
same --user as the run.`,
		Example: `  rollout promote 20261201T031502Z-4f2a1c
  rollout promote 20261201T031502Z-4f2a1c --abort
  rollout promote 20261201T031502Z-4f2a1c --user`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.RunID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return promoteRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Abort, "abort", false, "reject the canary: roll the canaries back")
	cmd.Flags().BoolVar(&opts.User, "user", false, "the run talks to the user's systemd manager")
	return cmd
}

func promoteRun(opts *PromoteOptions) error {
	dir := opts.Dir
	if dir == "" {
		dir = executor.PromoteDir(executor.DefaultStatePaths(opts.User).Journals)
	}
	if err := executor.Promote(dir, opts.RunID, executor.Promotion{By: whoAmI(), Abort: opts.Abort, Time: opts.Now()}); err != nil {
		return usageError("%v", err)
	}
	what := "promoted"
	if opts.Abort {
		what = "rejected"
	}
	fmt.Fprintf(opts.IO.ErrOut, "rollout: the canary of run %s is %s; the run goes on (see its output or `rollout events --run %s`).\n", opts.RunID, what, opts.RunID)
	return nil
}

// promoter answers a canary's wait from the terminal the run was started
// on: a line "y" promotes, "n" rejects (anything else is asked again).
// It is used only when stdin is a terminal, so a CI job's run never
// blocks on it; `rollout promote` from another shell works alike.
type promoter struct {
	in    *bufio.Reader
	errW  io.Writer
	dir   string
	runID string
	by    string
	once  sync.Once
}

// observe wraps an observer: at CANARY_WAITING it says the run also
// takes an answer here, and starts reading it.
func (p *promoter) observe(next func(executor.Event)) func(executor.Event) {
	return func(e executor.Event) {
		if e.Event == executor.CanaryWaiting {
			e.Message += "; or type y (promote) or n (roll back) and Enter here"
			p.once.Do(func() { go p.read() })
		}
		next(e)
	}
}

// read takes answers until one is y or n, and writes it as `rollout
// promote` does. The run decides what becomes of it (it may have stopped
// waiting meanwhile: then the answer is refused, and said so).
func (p *promoter) read() {
	for {
		line, err := p.in.ReadString('\n')
		answer := strings.ToLower(strings.TrimSpace(line))
		switch answer {
		case "y", "yes", "n", "no":
			abort := answer[0] == 'n'
			if err := executor.Promote(p.dir, p.runID, executor.Promotion{By: p.by + " (terminal)", Abort: abort, Time: time.Now()}); err != nil {
				fmt.Fprintf(p.errW, "rollout: %v\n", err)
			}
			return
		case "":
		default:
			fmt.Fprintf(p.errW, "rollout: type y to promote the canary or n to roll it back\n")
		}
		if err != nil {
			return
		}
	}
}

// whoAmI names the person promoting: user@host.
func whoAmI() string {
	by := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		by = u.Username
	}
	if host, err := os.Hostname(); err == nil {
		by += "@" + host
	}
	return by
}

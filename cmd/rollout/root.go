package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/dsl"
)

// Exit codes, as in the design contract.
const (
	exitOK             = 0
	exitFailed         = 1 // a service failed and was rolled back; plan validate: invalid plan
	exitUsage          = 2 // bad usage or an invalid plan
	exitRollbackFailed = 3
	exitInterrupted    = 130
)

// exitError carries an exit code through cobra's error return. A nil err
// means the command already reported everything it had to say.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// silentExit ends the command with code after it has printed its own report.
func silentExit(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// usageError is bad usage: exit 2 with the message.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// NewCmdRoot builds the command tree writing to io.
func NewCmdRoot(io *IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "rollout",
		Short: "Restart a platform's systemd services in dependency order, with rollback",
		Long: `rollout restarts the services of a platform in dependency order, driven by
reviewable HCL plans, and puts every service back the way it was when a
restart goes wrong.`,
		Example: `  rollout plan validate plans/platform.hcl plans/infra-only.hcl
  rollout plan show plans/infra-only.hcl
  rollout run plans/platform.hcl --service sso.api --dry-run`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.SetIn(io.In)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath())}
	})

	plan := &cobra.Command{
		Use:   "plan",
		Short: "Check, show and format plan files without touching any service",
		Example: `  rollout plan validate plans/platform.hcl plans/infra-only.hcl
  rollout plan show plans/core-apis.hcl --service merchant.api
  rollout plan fmt --check --diff plans/*.hcl`,
	}
	plan.AddCommand(NewCmdValidate(io, nil))
	plan.AddCommand(NewCmdShow(io, nil))
	plan.AddCommand(NewCmdFmt(io, nil))
	root.AddCommand(plan)
	root.AddCommand(NewCmdRun(io, nil))
	root.AddCommand(NewCmdEvents(io, nil))
	root.AddCommand(NewCmdStatus(io, nil))
	root.AddCommand(NewCmdRecover(io, nil))
	root.AddCommand(NewCmdPromote(io, nil))
	root.AddCommand(NewCmdRollback(io, nil))
	root.AddCommand(NewCmdReleases(io, nil))
	root.AddCommand(NewCmdDemo(io, nil))
	root.AddCommand(newCmdDemoService())
	addCompletionExamples(root)
	rejectUnknownSubcommands(root)
	return root
}

// rejectUnknownSubcommands makes a command that only groups others (`plan`,
// `completion`) fail on an unknown subcommand. cobra checks subcommand
// names only for the root: `rollout completion bogus` would print the help
// and exit 0, so a script could not tell that it got no completion.
func rejectUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		rejectUnknownSubcommands(sub)
	}
	if !c.HasParent() || !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		var names []string
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		return usageError("unknown command %q for `%s`.%s Choose one of: %s",
			args[0], cmd.CommandPath(), dsl.DidYouMean(args[0], names), strings.Join(names, ", "))
	}
}

// addCompletionExamples adds cobra's completion command now (cobra would
// add it at Execute) so that it and its shell subcommands get examples.
func addCompletionExamples(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	examples := map[string]string{
		"completion": `  rollout completion bash > /etc/bash_completion.d/rollout
  rollout completion zsh > "${fpath[1]}/_rollout"
  rollout completion fish > ~/.config/fish/completions/rollout.fish`,
		"bash":       "  source <(rollout completion bash)\n  rollout completion bash > /etc/bash_completion.d/rollout",
		"zsh":        "  source <(rollout completion zsh)\n  rollout completion zsh > \"${fpath[1]}/_rollout\"",
		"fish":       "  rollout completion fish | source\n  rollout completion fish > ~/.config/fish/completions/rollout.fish",
		"powershell": "  rollout completion powershell | Out-String | Invoke-Expression",
	}
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = examples["completion"]
		for _, sub := range c.Commands() {
			sub.Example = examples[sub.Name()]
		}
	}
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, io *IOStreams) int {
	root := NewCmdRoot(io)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(io.ErrOut, "rollout: %s\n", ee.err)
		}
		return ee.code
	}
	// cobra's own errors (unknown command, bad args) are usage errors.
	fmt.Fprintf(io.ErrOut, "rollout: %s\n", err)
	return exitUsage
}

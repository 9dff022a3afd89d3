package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/planner"
)

// ShowOptions are the inputs of `rollout plan show`.
type ShowOptions struct {
	IO     *IOStreams
	File   string
	Format string
	Flags  planFlags
}

// NewCmdShow builds `plan show`.
func NewCmdShow(io *IOStreams, runF func(*ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "show [--format text|json|dot|mermaid] [selection and run flags] FILE",
		Short: "Print the compiled plan: order, waves, each service's resolved steps and their undo",
		Long: `Print the compiled plan: the services a run would restart, in the order a
--parallel 1 run follows, the waves a parallel run follows, the critical path
with its estimated time, and for each service its resolved steps and what
undoes each. The same input always prints the same bytes.

Formats: text for review, json for tools, dot for Graphviz, mermaid for a
pull request comment.`,
		Example: `  rollout plan show plans/infra-only.hcl
  rollout plan show --service sso.api --deploy --deploy-path /tmp/deploy/sso-api plans/platform.hcl
  rollout plan show --format json plans/platform.hcl | jq '.order'
  rollout plan show --format dot plans/platform.hcl | dot -Tsvg > platform.svg
  rollout plan show --format mermaid plans/core-apis.hcl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if err := opts.Flags.check(cmd.Flags()); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return showRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Format, "format", "text", "output format: text, json, dot or mermaid")
	addPlanFlags(cmd.Flags(), &opts.Flags)
	return cmd
}

var renderers = map[string]func(io.Writer, *planner.Plan) error{
	"text":    planner.RenderText,
	"json":    planner.RenderJSON,
	"dot":     planner.RenderDOT,
	"mermaid": planner.RenderMermaid,
}

func showRun(opts *ShowOptions) error {
	render, ok := renderers[opts.Format]
	if !ok {
		return usageError("`--format` must be text, json, dot or mermaid, not %q", opts.Format)
	}
	c, err := loadForRun(opts.IO, opts.File, &opts.Flags)
	if err != nil {
		return err
	}
	return render(opts.IO.Out, c.Plan)
}

// loadForRun compiles file for `plan show` and `run`: diagnostics go to
// ErrOut, and an invalid plan is exit 2.
func loadForRun(io *IOStreams, file string, f *planFlags) (compiled, error) {
	vars, err := parseVars(f.Vars)
	if err != nil {
		return compiled{}, err
	}
	c := compileFile(file, vars, f.compileOptions())
	if err := writeDiagsText(io.ErrOut, sources(c.Config), c.Diags, io.ColorErr()); err != nil {
		return c, err
	}
	if c.Plan == nil || c.Diags.HasErrors() {
		errs, _ := countDiags(c.Diags)
		return c, usageError("%s is not a valid plan (%s); see `rollout plan validate %s`", file, plural(errs, "error"), file)
	}
	return c, nil
}

package main

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// ValidateOptions are the inputs of `rollout plan validate`.
type ValidateOptions struct {
	IO     *IOStreams
	Files  []string
	Format string
	Vars   []string
}

// NewCmdValidate builds `plan validate`. runF replaces validateRun in tests
// of flag parsing.
func NewCmdValidate(io *IOStreams, runF func(*ValidateOptions) error) *cobra.Command {
	opts := &ValidateOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "validate [--format text|json|github] FILE...",
		Short: "Check plan files and report every problem at once",
		Long: `Check plan files: syntax, unknown blocks and attributes, types, durations,
URLs, unit names, duplicates, unknown dependencies, cycles, pipelines and step
arguments. Every problem is reported with file:line:column, the source line,
and what to do. Every plan block of a file is checked.

Exit status: 0 valid (warnings allowed), 1 invalid, 2 bad usage.`,
		Example: `  rollout plan validate plans/platform.hcl plans/infra-only.hcl
  rollout plan validate --format github plans/platform.hcl   # annotations in a pull request
  rollout plan validate --format json plans/infra-only.hcl | jq .diagnostics`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if runF != nil {
				return runF(opts)
			}
			return validateRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Format, "format", formatText, "output format: text, json or github")
	cmd.Flags().StringArrayVar(&opts.Vars, "var", nil, "set a plan variable, `K=V` (repeatable)")
	return cmd
}

func validateRun(opts *ValidateOptions) error {
	switch opts.Format {
	case formatText, formatJSON, formatGitHub:
	default:
		return usageError("`--format` must be text, json or github, not %q", opts.Format)
	}
	vars, err := parseVars(opts.Vars)
	if err != nil {
		return err
	}
	report := jsonReport{Valid: true, Files: opts.Files}
	var all hcl.Diagnostics
	files := map[string][]byte{}
	for _, file := range opts.Files {
		c, summary := validateFile(file, vars)
		for name, f := range sources(c.Config) {
			files[name] = f
		}
		all = append(all, c.Diags...)
		if opts.Format == formatText {
			if err := writeDiagsText(opts.IO.Out, sources(c.Config), c.Diags, opts.IO.ColorOut()); err != nil {
				return err
			}
			fmt.Fprintln(opts.IO.Out, summary)
		}
	}
	report.ErrorCount, report.WarningCount = countDiags(all)
	report.Valid = report.ErrorCount == 0
	switch opts.Format {
	case formatJSON:
		report.Diagnostics = toJSONDiags(files, all)
		if err := writeDiagsJSON(opts.IO.Out, report); err != nil {
			return err
		}
	case formatGitHub:
		if err := writeDiagsGitHub(opts.IO.Out, all, githubBase(opts.IO.Getenv)); err != nil {
			return err
		}
	}
	if !report.Valid {
		return silentExit(exitFailed)
	}
	return nil
}

// validateFile loads file and compiles it once per plan block, so that
// every canned plan's selection is checked, merging the diagnostics. It
// returns the one-line summary printed after the diagnostics.
func validateFile(file string, vars map[string]string) (compiled, string) {
	cfg, diags := dsl.Load(file, dsl.LoadOptions{Vars: vars})
	c := compiled{Config: cfg, Diags: diags}
	if cfg != nil && !cfg.Incomplete {
		names := []string{""}
		if len(cfg.Plans) > 1 {
			names = names[:0]
			for _, p := range cfg.Plans {
				names = append(names, p.Name)
			}
		}
		for _, name := range names {
			plan, more := planner.Compile(cfg, planner.Options{StepTypes: steps.Types(), PlanName: name})
			c.Diags = appendNew(c.Diags, more)
			if plan != nil && len(plan.Services) == 0 && !more.HasErrors() {
				c.Diags = appendNew(c.Diags, hcl.Diagnostics{emptyPlan(plan)})
			}
			if c.Plan == nil && !c.Diags.HasErrors() {
				c.Plan = plan
			}
		}
	}
	errs, warns := countDiags(c.Diags)
	switch {
	case errs > 0:
		return c, fmt.Sprintf("%s: invalid (%s, %s)", file, plural(errs, "error"), plural(warns, "warning"))
	case c.Plan != nil:
		return c, fmt.Sprintf("%s: valid (%s in plan %q, %s)", file, c.Plan.SizeText(), c.Plan.Name, plural(warns, "warning"))
	default:
		return c, fmt.Sprintf("%s: valid (%s)", file, plural(warns, "warning"))
	}
}

// appendNew appends the diagnostics of more that are not in diags yet: a
// problem outside the plan blocks is found once per plan.
func appendNew(diags, more hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	key := func(d *hcl.Diagnostic) string {
		r := ""
		if d.Subject != nil {
			r = d.Subject.String()
		}
		return fmt.Sprint(d.Severity, d.Summary, d.Detail, r)
	}
	for _, d := range diags {
		seen[key(d)] = true
	}
	for _, d := range more {
		if !seen[key(d)] {
			seen[key(d)] = true
			diags = append(diags, d)
		}
	}
	return diags
}

// emptyPlan warns that a plan selects no services: valid, but `rollout run`
// refuses it (exit 2), since a run that restarts nothing is a mistake (a
// select that matches nothing, a missing include).
func emptyPlan(plan *planner.Plan) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  "Plan selects no services",
		Detail: fmt.Sprintf("Plan %q selects no services, so `rollout run` would refuse it. Declare services (or include the inventory that does), or widen the plan's select.",
			plan.Name),
		Subject: plan.DeclRange.Ptr(),
	}
}

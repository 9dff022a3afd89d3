package main

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/pflag"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// planFlags are the flags shared by `plan show` and `run`: which plan and
// services, and the run flags that step expressions read as run.*.
type planFlags struct {
	Vars           []string
	Plan           string
	Services       []string
	Hosts          []string
	WithDependents bool
	Parallel       int
	ParallelSet    bool
	Deploy         bool
	DeployPath     string
	SkipMigrations bool
	Force          bool
	DryRun         bool
}

func addPlanFlags(fs *pflag.FlagSet, f *planFlags) {
	fs.StringArrayVar(&f.Vars, "var", nil, "set a plan variable, `K=V` (repeatable)")
	fs.StringVar(&f.Plan, "plan", "", "the plan block to use when the file has several")
	fs.StringArrayVar(&f.Services, "service", nil, "restart only this service (repeatable; dependency order is kept)")
	fs.StringArrayVar(&f.Hosts, "host", nil, "restart only the instances on this host (repeatable)")
	fs.BoolVar(&f.WithDependents, "with-dependents", false, "also restart every service downstream of the selection")
	fs.IntVar(&f.Parallel, "parallel", 1, "how many services may restart at once (0 = unbounded); default: the plan's max_parallel, else 1")
	fs.BoolVar(&f.Deploy, "deploy", false, "deploy code before restarting (run.deploy); needs --deploy-path")
	fs.StringVar(&f.DeployPath, "deploy-path", "", "the directory to deploy from (run.deploy_path)")
	fs.BoolVar(&f.SkipMigrations, "skip-migrations", false, "skip migration steps (run.skip_migrations)")
	fs.BoolVar(&f.Force, "force", false, "skip health checks and stabilization; never abort on a failed pre-check")
}

// check validates flag combinations; it needs the FlagSet to know whether
// --parallel was given.
func (f *planFlags) check(fs *pflag.FlagSet) error {
	f.ParallelSet = fs.Changed("parallel")
	if f.ParallelSet && f.Parallel < 0 {
		return usageError("`--parallel` must be 0 (unbounded) or more, not %d", f.Parallel)
	}
	if f.Deploy && f.DeployPath == "" {
		return usageError("`--deploy` needs `--deploy-path DIR`")
	}
	if f.DeployPath != "" && !f.Deploy {
		return usageError("`--deploy-path` is only used with `--deploy`")
	}
	for _, s := range f.Services {
		if strings.TrimSpace(s) == "" {
			return usageError("`--service` needs a service name")
		}
	}
	for _, h := range f.Hosts {
		if strings.TrimSpace(h) == "" {
			return usageError("`--host` needs a host name")
		}
	}
	if _, err := parseVars(f.Vars); err != nil {
		return err
	}
	return nil
}

// parseVars turns repeated --var K=V flags into a map.
func parseVars(vars []string) (map[string]string, error) {
	out := make(map[string]string, len(vars))
	for _, kv := range vars {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, usageError("`--var %s`: expected K=V, such as `--var region=eu`", kv)
		}
		if _, dup := out[k]; dup {
			return nil, usageError("`--var %s` is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

func (f *planFlags) compileOptions() planner.Options {
	return planner.Options{
		StepTypes:      steps.Types(),
		PlanName:       f.Plan,
		Services:       f.Services,
		Hosts:          f.Hosts,
		WithDependents: f.WithDependents,
		Parallel:       f.Parallel,
		ParallelSet:    f.ParallelSet,
		Run: planner.RunFlags{
			Deploy:         f.Deploy,
			DeployPath:     f.DeployPath,
			SkipMigrations: f.SkipMigrations,
			Force:          f.Force,
			DryRun:         f.DryRun,
		},
	}
}

// compiled is a loaded and compiled plan file with everything needed to
// print its diagnostics.
type compiled struct {
	Config *dsl.Config
	Plan   *planner.Plan // nil when Diags has errors
	Diags  hcl.Diagnostics
}

// compileFile loads file and compiles it, collecting the problems of both
// stages so a reviewer sees all of them at once.
func compileFile(file string, vars map[string]string, opts planner.Options) compiled {
	cfg, diags := dsl.Load(file, dsl.LoadOptions{Vars: vars})
	c := compiled{Config: cfg, Diags: diags}
	if cfg == nil || cfg.Incomplete {
		return c
	}
	plan, more := planner.Compile(cfg, opts)
	c.Diags = append(c.Diags, more...)
	if !c.Diags.HasErrors() {
		c.Plan = plan
	}
	return c
}

// sources returns the files of cfg for the diagnostic printer.
func sources(cfg *dsl.Config) map[string][]byte {
	if cfg == nil {
		return nil
	}
	return cfg.Sources
}

func countDiags(diags hcl.Diagnostics) (errs, warns int) {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

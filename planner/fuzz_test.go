package planner_test

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// FuzzCompile feeds arbitrary bytes through the whole front end, as
// `rollout plan validate` and `plan show` do: dsl.Load, then planner.Compile
// with the real step types and run flags, then every renderer. No input may
// panic. Seeds: every plan under testdata and the canned plans.
func FuzzCompile(f *testing.F) {
	for _, root := range []string{"testdata", "../dsl/testdata", "../plans"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".hcl") {
				return err
			}
			src, err := os.ReadFile(path)
			if err == nil {
				f.Add(src, false)
			}
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	// The hostile test's plan (100,000 nested brackets) and a chain of
	// operators: the fuzzer mutates around dsl's bounds, which must refuse
	// them before the parser recurses.
	f.Add([]byte("variable \"x\" {\n  default = "+strings.Repeat("[", 100000)+"\n}\n"), false)
	f.Add([]byte("variable \"x\" { default = "+strings.Repeat("!", 20000)+"true }\n"), true)
	// Steps whose needs are read from their arguments (preflight).
	f.Add([]byte(`pipeline "default" {
  step "rsync" "d" {
    from = run.deploy_path
    to   = service.working_dir
  }
  step "exec" "m" {
    command          = ["./bin/migrate", service.name]
    rollback_command = [lookup(service.meta, "undo", "true")]
    dir              = service.working_dir
  }
  step "reload_or_restart" "r" { unit = "x.service" }
}
service "a" {
  unit        = "a.service"
  working_dir = "/srv/a"
  meta        = { undo = "undo" }
  health "exec" { command = ["check"] }
}
`), true)
	types := steps.Types()
	f.Fuzz(func(t *testing.T, src []byte, deploy bool) {
		read := func(p string) ([]byte, error) {
			if filepath.Clean(p) == "main.hcl" {
				return src, nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		glob := func(pattern string) ([]string, error) {
			if ok, err := filepath.Match(pattern, "main.hcl"); ok || err != nil {
				return []string{"main.hcl"}, err
			}
			return nil, nil
		}
		cfg, _ := dsl.Load("main.hcl", dsl.LoadOptions{ReadFile: read, Glob: glob, Vars: map[string]string{"host": "h"}})
		if cfg == nil || cfg.Incomplete {
			return
		}
		opts := planner.Options{
			StepTypes: types,
			Run:       planner.RunFlags{Deploy: deploy, DeployPath: "/tmp/x", Force: deploy},
			Parallel:  0, ParallelSet: deploy,
		}
		plan, _ := planner.Compile(cfg, opts)
		if plan == nil {
			return
		}
		for _, render := range []func(io.Writer, *planner.Plan) error{
			planner.RenderText, planner.RenderJSON, planner.RenderDOT, planner.RenderMermaid,
		} {
			if err := render(io.Discard, plan); err != nil {
				t.Fatal(err)
			}
		}
	})
}

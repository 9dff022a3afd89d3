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

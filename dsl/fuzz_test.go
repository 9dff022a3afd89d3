package dsl

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// FuzzLoad feeds arbitrary bytes to Load as the root file, which includes
// itself and a second fixed file, and checks that it never panics and that
// every diagnostic can be rendered.
func FuzzLoad(f *testing.F) {
	err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".hcl") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(src)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	// The hostile test's plan: 100,000 nested brackets. The fuzzer then
	// mutates around the depth bound (Load must refuse, never recurse).
	f.Add([]byte(deepPlan()))
	f.Add([]byte("x = " + strings.Repeat("!", 20000) + "true\n"))
	const other = `
service "other" {
  unit = "other.service"
  health "http" { url = "http://localhost:1/health" }
}
`
	f.Fuzz(func(t *testing.T, src []byte) {
		files := memFS{"main.hcl": string(src), "inc/other.hcl": other, "inc/main.hcl": string(src)}
		cfg, diags := Load("main.hcl", files.options(map[string]string{"region": "us", "replicas": "2"}))
		if cfg == nil {
			t.Fatal("nil Config")
		}
		if err := WriteDiagnostics(&strings.Builder{}, cfg.Sources, diags, false); err != nil {
			t.Fatal(err)
		}
		// Values handed to the planner must be usable as they are.
		for _, s := range cfg.Services {
			_ = cfg.EvalContext(cty.EmptyObjectVal, ServiceValue(s))
		}
	})
}

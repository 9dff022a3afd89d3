package planner

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"

	"github.com/rollout-sh/rollout/dsl"
)

var update = flag.Bool("update", false, "rewrite golden files")

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// load reads a fixture with the real dsl loader and fails on any load
// diagnostic: the fixtures are meant to be valid for the dsl package.
func load(t testing.TB, path string) *dsl.Config {
	t.Helper()
	cfg, diags := dsl.Load(path, dsl.LoadOptions{})
	if diags.HasErrors() || len(diags) > 0 {
		t.Fatalf("loading %s: %s", path, diags.Error())
	}
	return cfg
}

// renderDiags prints diagnostics as the CLI does, with source lines.
func renderDiags(t *testing.T, cfg *dsl.Config, diags hcl.Diagnostics) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := dsl.WriteDiagnostics(&buf, cfg.Sources, diags, false); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCompileDiagnostics(t *testing.T) {
	tests := []struct {
		name     string
		opts     func(*Options)
		wantPlan bool // warnings only: Compile still returns a plan
	}{
		{name: "unknown_dependency"},
		{name: "cycle"},
		{name: "self_dependency"},
		{name: "no_pipeline"},
		{name: "unknown_pipeline_attribute"},
		{name: "unknown_step_type"},
		{name: "missing_argument"},
		{name: "wrong_argument_type"},
		{name: "unused_pipeline", wantPlan: true},
		{name: "unknown_service_flag", opts: func(o *Options) { o.Services = []string{"sso.apl", "sso.redis"} }},
		{name: "unknown_plan_name", opts: func(o *Options) { o.PlanName = "api" }},
		{name: "if_not_bool"},
		{name: "several_plans"},
		{name: "unknown_select_name"},
		{name: "service_not_in_plan", opts: func(o *Options) { o.Services = []string{"sso.redis"} }},
		{name: "unknown_host", opts: func(o *Options) { o.Hosts = []string{"app9"} }},
		{name: "unused_host", wantPlan: true},
		{name: "local_step_on_host", opts: func(o *Options) {
			o.StepTypes["local_only"] = StepType{Name: "local_only", Spec: hcldec.ObjectSpec{}, NotOnHosts: "it reads a file on the machine rollout runs on"}
		}},
		{name: "bad_canary"},
		{name: "shared_deploy_source", opts: func(o *Options) { o.Run = RunFlags{Deploy: true, DeployPath: "/tmp/release"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "diags", tt.name)
			cfg := load(t, filepath.Join(dir, "main.hcl"))
			opts := Options{StepTypes: testStepTypes()}
			if tt.opts != nil {
				tt.opts(&opts)
			}
			plan, diags := Compile(cfg, opts)
			if len(diags) == 0 {
				t.Fatal("no diagnostics")
			}
			if got := plan != nil; got != tt.wantPlan {
				t.Errorf("plan returned = %v, want %v", got, tt.wantPlan)
			}
			if got := diags.HasErrors(); got == tt.wantPlan {
				t.Errorf("HasErrors = %v, want %v", got, !tt.wantPlan)
			}
			checkGolden(t, filepath.Join(dir, "want.txt"), renderDiags(t, cfg, diags))
		})
	}
}

func TestRenderGolden(t *testing.T) {
	for _, dir := range []string{"show", "show_fleet", "show_instances"} {
		t.Run(dir, func(t *testing.T) { testRenderGolden(t, dir) })
	}
}

func testRenderGolden(t *testing.T, dir string) {
	cfg := load(t, filepath.Join("testdata", dir, "main.hcl"))
	plan, diags := Compile(cfg, Options{StepTypes: testStepTypes(), Run: RunFlags{Deploy: true, DeployPath: "/srv/release/42"}})
	if diags.HasErrors() || len(diags) > 0 {
		t.Fatalf("compile: %s", diags.Error())
	}
	tests := []struct {
		ext    string
		render func(*bytes.Buffer, *Plan) error
	}{
		{"txt", func(b *bytes.Buffer, p *Plan) error { return RenderText(b, p) }},
		{"json", func(b *bytes.Buffer, p *Plan) error { return RenderJSON(b, p) }},
		{"dot", func(b *bytes.Buffer, p *Plan) error { return RenderDOT(b, p) }},
		{"mmd", func(b *bytes.Buffer, p *Plan) error { return RenderMermaid(b, p) }},
	}
	for _, tt := range tests {
		t.Run(tt.ext, func(t *testing.T) {
			var first, second bytes.Buffer
			if err := tt.render(&first, plan); err != nil {
				t.Fatal(err)
			}
			if err := tt.render(&second, plan); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Error("two renderings of the same plan differ")
			}
			if !strings.HasSuffix(first.String(), "\n") {
				t.Error("output does not end with a newline")
			}
			checkGolden(t, filepath.Join("testdata", dir, "want."+tt.ext), first.Bytes())
		})
	}
}

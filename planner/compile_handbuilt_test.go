package planner

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rollout-sh/rollout/dsl"
)

// TestCompileHandBuilt feeds Compile configs a partial load could produce
// (nil entries, steps without body) and checks it reports rather than
// panics.
func TestCompileHandBuilt(t *testing.T) {
	file, diags := hclsyntax.ParseConfig([]byte(`if = true
command = ["true"]
`), "snippet.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	content, rest, _ := file.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "if"}}})
	pipeline := &dsl.Pipeline{Name: "default", Steps: []*dsl.Step{
		nil,
		{Type: "exec", Name: "run", If: content.Attributes["if"].Expr, Body: rest},
		{Type: "restart", Name: "restart"},
	}}
	tests := []struct {
		name      string
		cfg       *dsl.Config
		wantErr   bool
		wantSteps int
	}{
		{"nil entries", &dsl.Config{Root: "x.hcl", Pipelines: []*dsl.Pipeline{nil, pipeline}, Services: []*dsl.Service{nil, {Name: "a"}}, Plans: []*dsl.Plan{nil}}, false, 2},
		{"no pipelines", &dsl.Config{Root: "x.hcl", Services: []*dsl.Service{{Name: "a"}}}, true, 0},
		{"empty", &dsl.Config{Root: "x.hcl"}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, diags := Compile(tt.cfg, Options{StepTypes: testStepTypes()})
			if diags.HasErrors() != tt.wantErr {
				t.Fatalf("errors = %v, want %v: %s", diags.HasErrors(), tt.wantErr, diags.Error())
			}
			if tt.wantErr {
				return
			}
			steps := 0
			for _, svc := range plan.Services {
				steps += len(svc.Steps)
			}
			if steps != tt.wantSteps {
				t.Errorf("got %d steps, want %d", steps, tt.wantSteps)
			}
		})
	}
}

package planner

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/rollout-sh/rollout/dsl"
)

func TestSuggest(t *testing.T) {
	candidates := []string{"sso.postgresql", "sso.redis", "sso.api", "merchant.api"}
	tests := []struct {
		name string
		want string
	}{
		{"sso.postgresq", "sso.postgresql"},
		{"sso.apl", "sso.api"},
		{"sso.redsi", "sso.redis"},
		{"merchant", "merchant.api"}, // prefix
		{"billing.api", ""},
		{"sso.api", ""}, // an exact match is not a suggestion
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := suggest(tt.name, candidates); got != tt.want {
				t.Errorf("suggest(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"é", "e", 1},
	}
	for _, tt := range tests {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

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

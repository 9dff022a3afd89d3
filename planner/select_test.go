package planner

import (
	"os"
	"reflect"
	"testing"

	"github.com/rollout-sh/rollout/dsl"
)

// loadString loads HCL source held in memory as main.hcl.
func loadString(t testing.TB, src string) *dsl.Config {
	t.Helper()
	cfg, diags := dsl.Load("main.hcl", dsl.LoadOptions{
		ReadFile: func(path string) ([]byte, error) {
			if path == "main.hcl" {
				return []byte(src), nil
			}
			return nil, os.ErrNotExist
		},
		Glob: func(string) ([]string, error) { return nil, nil },
	})
	if len(diags) > 0 {
		t.Fatalf("load: %s", diags.Error())
	}
	return cfg
}

// platform: a → b → c chain plus the reference's examples.
const selectionSource = `
pipeline "default" {
  step "health_check" "precheck" {}
  step "restart" "restart" {}
  step "stabilize" "settle" { duration = "5s" }
}

service "sso.postgresql" {
  unit = "pg.service"
  type = "infra"
}
service "sso.redis" {
  unit = "redis.service"
  type = "infra"
}
service "sso.api" {
  unit       = "sso.service"
  type       = "api"
  depends_on = ["sso.postgresql", "sso.redis"]
  tags       = ["core"]
}
service "merchant.api" {
  unit       = "merchant.service"
  type       = "api"
  depends_on = ["sso.api"]
}
service "marketplace.api" {
  unit       = "marketplace.service"
  type       = "api"
  depends_on = ["merchant.api", "sso.api"]
  tags       = ["edge"]
}
service "seo.redis" {
  unit = "seo-redis.service"
  type = "infra"
}
service "seo.classifier" {
  unit       = "classifier.service"
  type       = "worker"
  depends_on = ["seo.redis"]
}
`

func TestSelection(t *testing.T) {
	tests := []struct {
		name      string
		plans     string
		opts      Options
		wantOrder []string
		wantWaves [][]string
		wantNeeds map[string][]string
	}{
		{
			name:      "no plan block selects all",
			wantOrder: []string{"sso.postgresql", "sso.redis", "sso.api", "merchant.api", "marketplace.api", "seo.redis", "seo.classifier"},
			wantWaves: [][]string{{"sso.postgresql", "sso.redis", "seo.redis"}, {"sso.api", "seo.classifier"}, {"merchant.api"}, {"marketplace.api"}},
		},
		{
			name:      "service flags keep dependency order, not flag order",
			opts:      Options{Services: []string{"marketplace.api", "sso.redis", "sso.api"}},
			wantOrder: []string{"sso.redis", "sso.api", "marketplace.api"},
			wantWaves: [][]string{{"sso.redis"}, {"sso.api"}, {"marketplace.api"}},
			wantNeeds: map[string][]string{"sso.api": {"sso.redis"}, "marketplace.api": {"sso.api"}},
		},
		{
			name:      "needs through an unselected intermediate",
			opts:      Options{Services: []string{"marketplace.api", "sso.postgresql"}},
			wantOrder: []string{"sso.postgresql", "marketplace.api"},
			wantWaves: [][]string{{"sso.postgresql"}, {"marketplace.api"}},
			wantNeeds: map[string][]string{"marketplace.api": {"sso.postgresql"}, "sso.postgresql": nil},
		},
		{
			name:      "with dependents",
			opts:      Options{Services: []string{"sso.api"}, WithDependents: true},
			wantOrder: []string{"sso.api", "merchant.api", "marketplace.api"},
			wantWaves: [][]string{{"sso.api"}, {"merchant.api"}, {"marketplace.api"}},
		},
		{
			name:      "plan selects by type",
			plans:     `plan "infra" { select = { types = ["infra"] } }`,
			wantOrder: []string{"sso.postgresql", "sso.redis", "seo.redis"},
			wantWaves: [][]string{{"sso.postgresql", "sso.redis", "seo.redis"}},
		},
		{
			name:      "plan selects by tag or name",
			plans:     `plan "mixed" { select = { tags = ["edge"], names = ["seo.redis", "sso.api"] } }`,
			wantOrder: []string{"sso.api", "marketplace.api", "seo.redis"},
			wantWaves: [][]string{{"sso.api", "seo.redis"}, {"marketplace.api"}},
			wantNeeds: map[string][]string{"marketplace.api": {"sso.api"}},
		},
		{
			name:      "named plan among several, then narrowed",
			plans:     `plan "apis" { select = { types = ["api"] } }` + "\n" + `plan "infra" { select = { types = ["infra"] } }`,
			opts:      Options{PlanName: "apis", Services: []string{"merchant.api"}},
			wantOrder: []string{"merchant.api"},
			wantWaves: [][]string{{"merchant.api"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadString(t, selectionSource+tt.plans)
			opts := tt.opts
			opts.StepTypes = testStepTypes()
			plan, diags := Compile(cfg, opts)
			if diags.HasErrors() {
				t.Fatalf("compile: %s", diags.Error())
			}
			if !reflect.DeepEqual(plan.Order, tt.wantOrder) {
				t.Errorf("Order = %q, want %q", plan.Order, tt.wantOrder)
			}
			if !reflect.DeepEqual(plan.Waves, tt.wantWaves) {
				t.Errorf("Waves = %q, want %q", plan.Waves, tt.wantWaves)
			}
			var names []string
			for i, svc := range plan.Services {
				names = append(names, svc.Name)
				if len(plan.Waves) <= svc.Wave || !contains(plan.Waves[svc.Wave], svc.Name) {
					t.Errorf("service %d %s has Wave %d, not in Waves", i, svc.Name, svc.Wave)
				}
			}
			if !reflect.DeepEqual(names, plan.Order) {
				t.Errorf("Services %q not in Order %q", names, plan.Order)
			}
			for _, svc := range plan.Services {
				if want, ok := tt.wantNeeds[svc.Name]; ok && !reflect.DeepEqual(svc.Needs, want) {
					t.Errorf("%s Needs = %q, want %q", svc.Name, svc.Needs, want)
				}
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestCompilePolicyAndSteps(t *testing.T) {
	tests := []struct {
		name            string
		plans           string
		opts            Options
		wantName        string
		wantParallel    int
		wantOnFailure   string
		wantStepsOfSSO  []string
		wantHealthRetry int
	}{
		{
			name: "defaults", wantName: "main", wantParallel: 1, wantOnFailure: "abort",
			wantStepsOfSSO: []string{"precheck", "restart", "settle"}, wantHealthRetry: 3,
		},
		{
			name: "plan block policy", plans: `plan "p" {
  max_parallel = 4
  on_failure   = "continue"
}`,
			wantName: "p", wantParallel: 4, wantOnFailure: "continue",
			wantStepsOfSSO: []string{"precheck", "restart", "settle"}, wantHealthRetry: 3,
		},
		{
			name: "parallel flag wins, force drops checks", plans: `plan "p" { max_parallel = 4 }`,
			opts:     Options{Parallel: 0, ParallelSet: true, Run: RunFlags{Force: true}},
			wantName: "p", wantParallel: 0, wantOnFailure: "abort",
			wantStepsOfSSO: []string{"restart"}, wantHealthRetry: 3,
		},
		{
			name: "defaults block applies to health", plans: `defaults { health_retries = 7 }`,
			wantName: "main", wantParallel: 1, wantOnFailure: "abort",
			wantStepsOfSSO: []string{"precheck", "restart", "settle"}, wantHealthRetry: 7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadString(t, selectionSource+tt.plans)
			opts := tt.opts
			opts.StepTypes = testStepTypes()
			plan, diags := Compile(cfg, opts)
			if diags.HasErrors() {
				t.Fatalf("compile: %s", diags.Error())
			}
			if plan.Name != tt.wantName || plan.MaxParallel != tt.wantParallel || plan.OnFailure != tt.wantOnFailure {
				t.Errorf("got name %q parallel %d on_failure %q, want %q %d %q",
					plan.Name, plan.MaxParallel, plan.OnFailure, tt.wantName, tt.wantParallel, tt.wantOnFailure)
			}
			var sso *Service
			for _, s := range plan.Services {
				if s.Name == "sso.api" {
					sso = s
				}
			}
			if sso == nil {
				t.Fatal("sso.api not in plan")
			}
			var steps []string
			for _, s := range sso.Steps {
				steps = append(steps, s.Name)
			}
			if !reflect.DeepEqual(steps, tt.wantStepsOfSSO) {
				t.Errorf("steps = %q, want %q", steps, tt.wantStepsOfSSO)
			}
			if sso.Health.Kind != "systemd" || sso.Health.Retries != tt.wantHealthRetry {
				t.Errorf("health = %+v, want systemd with %d retries", *sso.Health, tt.wantHealthRetry)
			}
		})
	}
}

// TestIfDropsSteps checks that `if` is evaluated per service and per run.
func TestIfDropsSteps(t *testing.T) {
	src := `
pipeline "default" {
  step "rsync" "deploy" {
    if   = run.deploy && service.working_dir != ""
    from = run.deploy_path
    to   = service.working_dir
  }
  step "restart" "restart" {}
}
service "with_dir" {
  unit        = "a.service"
  working_dir = "/srv/a"
}
service "without_dir" {
  unit = "b.service"
}
`
	tests := []struct {
		name string
		run  RunFlags
		want map[string]int // steps per service
	}{
		{"no deploy", RunFlags{}, map[string]int{"with_dir": 1, "without_dir": 1}},
		{"deploy", RunFlags{Deploy: true, DeployPath: "/release"}, map[string]int{"with_dir": 2, "without_dir": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, diags := Compile(loadString(t, src), Options{StepTypes: testStepTypes(), Run: tt.run})
			if diags.HasErrors() {
				t.Fatalf("compile: %s", diags.Error())
			}
			for _, svc := range plan.Services {
				if len(svc.Steps) != tt.want[svc.Name] {
					t.Errorf("%s has %d steps, want %d", svc.Name, len(svc.Steps), tt.want[svc.Name])
				}
			}
			if tt.run.Deploy {
				to := plan.Services[0].Steps[0].Args["to"]
				if to.AsString() != "/srv/a" {
					t.Errorf("deploy to = %#v, want /srv/a", to)
				}
			}
		})
	}
}

// TestDiagnosticsDeduplicated checks that a broken pipeline used by many
// services yields one error, not one per service.
func TestDiagnosticsDeduplicated(t *testing.T) {
	src := `
pipeline "default" {
  step "exec" "migrate" { dir = "/srv" }
}
service "a" { unit = "a.service" }
service "b" { unit = "b.service" }
service "c" { unit = "c.service" }
`
	_, diags := Compile(loadString(t, src), Options{StepTypes: testStepTypes()})
	if len(diags) != 1 {
		t.Errorf("got %d diagnostics, want 1: %s", len(diags), diags.Error())
	}
}

func TestCompileNilConfig(t *testing.T) {
	plan, diags := Compile(nil, Options{})
	if plan != nil || !diags.HasErrors() {
		t.Errorf("Compile(nil) = %v, %v; want nil plan and an error", plan, diags)
	}
}

package dsl

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// at renders a range as file:line for compact assertions.
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d", filepath.Base(r.Filename), r.Start.Line)
}

func loadValid(t *testing.T, vars map[string]string) *Config {
	t.Helper()
	cfg, diags := Load("testdata/valid/main.hcl", LoadOptions{Vars: vars})
	if diags.HasErrors() {
		t.Fatalf("unexpected diagnostics: %s", diags.Error())
	}
	return cfg
}

func TestLoadValid(t *testing.T) {
	cfg := loadValid(t, map[string]string{"owner": "ops", "replicas": "3", "canary": "true"})

	wantFiles := []string{
		"testdata/valid/main.hcl",
		"testdata/valid/inventory/edge.hcl",
		"testdata/valid/inventory/sso.hcl", // included twice, read once
		"testdata/valid/pipelines.hcl",
	}
	if !reflect.DeepEqual(cfg.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", cfg.Files, wantFiles)
	}
	for _, f := range wantFiles {
		if len(cfg.Sources[f]) == 0 {
			t.Errorf("Sources has no bytes for %s", f)
		}
	}

	t.Run("variables", func(t *testing.T) {
		tests := []struct {
			name string
			want cty.Value
		}{
			{"region", cty.StringVal("eu")},
			{"replicas", cty.NumberIntVal(3)},
			{"canary", cty.True},
			{"owner", cty.StringVal("ops")},
		}
		for _, tt := range tests {
			got := cfg.VarValues.GetAttr(tt.name)
			if !got.RawEquals(tt.want) {
				t.Errorf("var.%s = %#v, want %#v", tt.name, got, tt.want)
			}
		}
		var names []string
		for _, v := range cfg.Variables {
			names = append(names, v.Name)
		}
		if want := []string{"region", "replicas", "canary", "owner"}; !reflect.DeepEqual(names, want) {
			t.Errorf("variables = %q, want %q", names, want)
		}
		if d := cfg.Variables[0].Description; d != "Where the platform runs." {
			t.Errorf("description = %q", d)
		}
		if cfg.Variables[3].Default != cty.NilVal {
			t.Errorf("owner default = %#v, want NilVal", cfg.Variables[3].Default)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		want := Defaults{
			HealthTimeout: 30 * time.Second, HealthTimeoutSet: true,
			HealthRetries: 3, HealthRetriesSet: true,
			HealthInterval: time.Second, HealthIntervalSet: true,
			EventsLog: "/var/log/rollout/eu/events.jsonl", EventsLogSet: true,
		}
		got := cfg.Defaults
		if at(got.DeclRange) != "main.hcl:18" {
			t.Errorf("defaults at %s", at(got.DeclRange))
		}
		got.DeclRange = hcl.Range{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Defaults = %+v, want %+v", got, want)
		}
	})

	t.Run("services", func(t *testing.T) {
		var names []string
		for _, s := range cfg.Services {
			names = append(names, s.Name+"@"+at(s.NameRange))
		}
		want := []string{"sso.api@main.hcl:25", "edge.nginx@edge.hcl:1", "sso.postgresql@sso.hcl:1", "sso.redis@sso.hcl:11"}
		if !reflect.DeepEqual(names, want) {
			t.Fatalf("services = %q, want %q", names, want)
		}
		api := cfg.Services[0]
		if api.Unit != "lilith-sso-api.service" || api.Type != "api" || api.PipelineSet ||
			api.WorkingDir != "/var/www/lilith/codebase/features/sso/backend-api" {
			t.Errorf("sso.api = %+v", api)
		}
		if want := []string{"core", "eu"}; !reflect.DeepEqual(api.Tags, want) {
			t.Errorf("tags = %q, want %q", api.Tags, want)
		}
		if want := map[string]string{"owner": "ops", "replicas": "3"}; !reflect.DeepEqual(api.Meta, want) {
			t.Errorf("meta = %q, want %q", api.Meta, want)
		}
		var deps []string
		for _, d := range api.DependsOn {
			deps = append(deps, fmt.Sprintf("%s@%s:%d", d.Name, at(d.Range), d.Range.Start.Column))
		}
		if want := []string{"sso.postgresql@main.hcl:28:18", "sso.redis@main.hcl:28:36"}; !reflect.DeepEqual(deps, want) {
			t.Errorf("depends_on = %q, want %q", deps, want)
		}
		if got := at(api.UnitRange); got != "main.hcl:26" {
			t.Errorf("unit range %s", got)
		}

		wantHealth := []*Health{
			{Kind: HealthHTTP, URL: "http://localhost:3001/health", ExpectStatus: 204,
				Timeout: 30 * time.Second, TimeoutSet: true, Retries: 3, RetriesSet: true},
			{Kind: HealthSystemd},
			{Kind: HealthTCP, Address: "localhost:5432", Interval: 2 * time.Second, IntervalSet: true},
			{Kind: HealthExec, Command: []string{"redis-cli", "ping"}},
		}
		for i, s := range cfg.Services {
			h := *s.Health
			h.KindRange, h.DeclRange = hcl.Range{}, hcl.Range{}
			if !reflect.DeepEqual(&h, wantHealth[i]) {
				t.Errorf("%s health = %+v, want %+v", s.Name, h, wantHealth[i])
			}
		}

		nginx := cfg.Services[1]
		if len(nginx.DependsOn) != 1 || nginx.DependsOn[0].Name != "sso.api" || at(nginx.DependsOn[0].Range) != "edge.hcl:4" {
			t.Errorf("computed depends_on = %+v", nginx.DependsOn)
		}
		redis := cfg.Services[3]
		if !redis.PipelineSet || redis.Pipeline != "default" || at(redis.PipelineRange) != "sso.hcl:14" {
			t.Errorf("redis pipeline = %q set=%v at %s", redis.Pipeline, redis.PipelineSet, at(redis.PipelineRange))
		}
	})

	t.Run("pipelines", func(t *testing.T) {
		var got []string
		for _, p := range cfg.Pipelines {
			for _, s := range p.Steps {
				got = append(got, fmt.Sprintf("%s/%s.%s@%s if=%v", p.Name, s.Type, s.Name, at(s.DeclRange), s.If != nil))
			}
		}
		want := []string{
			"api/health_check.precheck@pipelines.hcl:2 if=false",
			"api/rsync.deploy@pipelines.hcl:3 if=true",
			"api/exec.migrate@pipelines.hcl:8 if=true",
			"api/reload_or_restart.restart@pipelines.hcl:17 if=false",
			"default/restart.restart@pipelines.hcl:21 if=false",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("steps:\n got %q\nwant %q", got, want)
		}

		// The remaining body must decode without `if`, with run.* and
		// service.* bound by EvalContext.
		migrate := cfg.Pipelines[0].Steps[2]
		content, diags := migrate.Body.Content(&hcl.BodySchema{
			Attributes: []hcl.AttributeSchema{{Name: "command"}, {Name: "dir"}, {Name: "timeout"}},
			Blocks:     []hcl.BlockHeaderSchema{{Type: "env"}},
		})
		if diags.HasErrors() {
			t.Fatalf("step body: %s", diags.Error())
		}
		attrs := content.Attributes
		ctx := cfg.EvalContext(
			cty.ObjectVal(map[string]cty.Value{"skip_migrations": cty.False}),
			ServiceValue(cfg.Services[0]),
		)
		dir, diags := attrs["dir"].Expr.Value(ctx)
		if diags.HasErrors() || dir.AsString() != "/var/www/lilith/codebase/features/sso/backend-api" {
			t.Errorf("dir = %#v, %s", dir, diags.Error())
		}
		cond, diags := migrate.If.Value(ctx)
		if diags.HasErrors() || !cond.True() {
			t.Errorf("if = %#v, %s", cond, diags.Error())
		}
	})

	t.Run("plans", func(t *testing.T) {
		if len(cfg.Plans) != 1 {
			t.Fatalf("plans = %d, want 1", len(cfg.Plans))
		}
		p := cfg.Plans[0]
		if p.Name != "infra-only" || at(p.NameRange) != "main.hcl:40" {
			t.Errorf("plan %q at %s", p.Name, at(p.NameRange))
		}
		if !reflect.DeepEqual(p.Select.Types, []string{"infra"}) || !reflect.DeepEqual(p.Select.Tags, []string{"core"}) || p.Select.Names != nil {
			t.Errorf("select = %+v", p.Select)
		}
		if p.MaxParallel != 1 || !p.MaxParallelSet || p.OnFailure != OnFailureContinue || p.MaxFailures != 2 {
			t.Errorf("plan = %+v", p)
		}
		if len(p.Batches) != 2 {
			t.Fatalf("batches = %d, want 2", len(p.Batches))
		}
		if b := p.Batches[0]; !reflect.DeepEqual(b.Types, []string{"api"}) || b.MaxUnavailable != 3 {
			t.Errorf("batch 0 = %+v", b)
		}
		if b := p.Batches[1]; !reflect.DeepEqual(b.Tags, []string{"edge"}) || b.MaxUnavailable != 1 {
			t.Errorf("batch 1 = %+v (max_unavailable defaults to 1)", b)
		}
	})
}

func TestLoadVarConversion(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		varName string
		want    cty.Value
		wantErr string
	}{
		{"string stays string", map[string]string{"owner": "ops", "region": "us"}, "region", cty.StringVal("us"), ""},
		{"number default makes a number", map[string]string{"owner": "ops", "replicas": "12"}, "replicas", cty.NumberIntVal(12), ""},
		{"bool default makes a bool", map[string]string{"owner": "ops", "canary": "false"}, "canary", cty.False, ""},
		{"no default makes a string", map[string]string{"owner": "42"}, "owner", cty.StringVal("42"), ""},
		{"bad number", map[string]string{"owner": "ops", "replicas": "many"}, "", cty.NilVal, "`--var replicas=many`"},
		{"bad bool", map[string]string{"owner": "ops", "canary": "maybe"}, "", cty.NilVal, "`--var canary=maybe`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load("testdata/valid/main.hcl", LoadOptions{Vars: tt.vars})
			if tt.wantErr != "" {
				if len(diags) != 1 || !strings.Contains(diags[0].Detail, tt.wantErr) || diags[0].Summary != "Invalid value for variable" {
					t.Fatalf("diags = %v, want one naming %s", diags, tt.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			if got := cfg.VarValues.GetAttr(tt.varName); !got.RawEquals(tt.want) {
				t.Errorf("var.%s = %#v, want %#v", tt.varName, got, tt.want)
			}
		})
	}
}

// memFS is an in-memory file tree for Load.
type memFS map[string]string

func (m memFS) options(vars map[string]string) LoadOptions {
	return LoadOptions{
		Vars: vars,
		ReadFile: func(p string) ([]byte, error) {
			src, ok := m[filepath.Clean(p)]
			if !ok {
				return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
			}
			return []byte(src), nil
		},
		Glob: func(pattern string) ([]string, error) {
			if _, err := filepath.Match(pattern, ""); err != nil {
				return nil, err
			}
			var out []string
			for name := range m {
				if ok, _ := filepath.Match(pattern, name); ok {
					out = append(out, name)
				}
			}
			return out, nil
		},
	}
}

func TestLoadInMemory(t *testing.T) {
	tests := []struct {
		name         string
		files        memFS
		wantServices []string
		wantSummary  []string
	}{
		{
			name: "include cycle reads each file once",
			files: memFS{
				"a.hcl": `include = ["b.hcl"]` + "\n" + `service "a" { unit = "a.service" }`,
				"b.hcl": `include = ["a.hcl", "./b.hcl"]` + "\n" + `service "b" { unit = "b.service" }`,
			},
			wantServices: []string{"a", "b"},
		},
		{
			name: "nested includes keep depth-first order",
			files: memFS{
				"a.hcl":     `include = ["x/*.hcl"]` + "\n" + `service "a" { unit = "a.service" }`,
				"x/c.hcl":   `service "c" { unit = "c.service" }`,
				"x/b.hcl":   `include = ["../y/d.hcl"]` + "\n" + `service "b" { unit = "b.service" }`,
				"y/d.hcl":   `service "d" { unit = "d.service" }`,
				"unrelated": `service "z" { unit = "z.service" }`,
			},
			wantServices: []string{"a", "b", "d", "c"},
		},
		{
			name: "syntax error in one file does not stop the others",
			files: memFS{
				"a.hcl": `include = ["b.hcl"]` + "\n" + `service "a" { unit = "a.service" }`,
				"b.hcl": `service "b" { unit = }`,
			},
			wantServices: []string{"a"},
			wantSummary:  []string{"Invalid expression"},
		},
		{
			name:        "missing root",
			files:       memFS{},
			wantSummary: []string{"Missing file"},
		},
		{
			name: "include must be a list of strings",
			files: memFS{
				"a.hcl": `include = "b.hcl"`,
			},
			wantSummary: []string{`Invalid value for "include"`},
		},
		{
			name: "missing variable does not cascade",
			files: memFS{
				"a.hcl": `variable "v" {}` + "\n" + `service "a" { unit = "${var.v}.service" }`,
			},
			wantServices: []string{"a"},
			wantSummary:  []string{"Missing value for variable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load("a.hcl", tt.files.options(nil))
			var names, summaries []string
			for _, s := range cfg.Services {
				names = append(names, s.Name)
			}
			for _, d := range diags {
				summaries = append(summaries, d.Summary)
			}
			if !reflect.DeepEqual(names, tt.wantServices) {
				t.Errorf("services = %q, want %q", names, tt.wantServices)
			}
			if !reflect.DeepEqual(summaries, tt.wantSummary) {
				t.Errorf("diagnostics = %q, want %q", summaries, tt.wantSummary)
			}
		})
	}
}

func TestUnitNames(t *testing.T) {
	tests := []struct {
		unit string
		ok   bool
	}{
		{"api.service", true},
		{"postgresql@15-main.service", true},
		{"dev-sda1.device", true},
		{"backup.timer", true},
		{"api", false},
		{".service", false},
		{"my api.service", false},
		{"api.servic", false},
		{strings.Repeat("a", 248) + ".service", false},
		{"", false},
	}
	for _, tt := range tests {
		diags := validateUnitName(tt.unit, hcl.Range{})
		if got := !diags.HasErrors(); got != tt.ok {
			t.Errorf("validateUnitName(%q) ok = %v, want %v (%v)", tt.unit, got, tt.ok, diags)
		}
	}
}

func TestServiceValue(t *testing.T) {
	empty := ServiceValue(&Service{Name: "a"})
	if !empty.GetAttr("tags").RawEquals(cty.ListValEmpty(cty.String)) ||
		!empty.GetAttr("depends_on").RawEquals(cty.ListValEmpty(cty.String)) ||
		!empty.GetAttr("meta").RawEquals(cty.MapValEmpty(cty.String)) {
		t.Errorf("empty collections = %#v", empty)
	}
	full := ServiceValue(&Service{
		Name: "sso.api", Unit: "api.service", Type: "api", Pipeline: "p", WorkingDir: "/srv",
		Tags: []string{"core"}, DependsOn: []Dependency{{Name: "db"}}, Meta: map[string]string{"k": "v"},
	})
	want := cty.ObjectVal(map[string]cty.Value{
		"name": cty.StringVal("sso.api"), "unit": cty.StringVal("api.service"), "type": cty.StringVal("api"),
		"pipeline": cty.StringVal("p"), "working_dir": cty.StringVal("/srv"),
		"tags":       cty.ListVal([]cty.Value{cty.StringVal("core")}),
		"depends_on": cty.ListVal([]cty.Value{cty.StringVal("db")}),
		"meta":       cty.MapVal(map[string]cty.Value{"k": cty.StringVal("v")}),
	})
	if !full.RawEquals(want) {
		t.Errorf("ServiceValue = %#v, want %#v", full, want)
	}
	if !full.Type().Equals(empty.Type()) || !ServiceValue(nil).Type().Equals(empty.Type()) {
		t.Error("ServiceValue types differ between services")
	}
}

func TestFunctions(t *testing.T) {
	tests := []struct {
		expr string
		want cty.Value
	}{
		{`upper("a")`, cty.StringVal("A")},
		{`join(",", ["a", "b"])`, cty.StringVal("a,b")},
		{`regex_replace("a1b2", "[0-9]", "")`, cty.StringVal("ab")},
		{`tonumber("3")`, cty.NumberIntVal(3)},
		{`tostring(3)`, cty.StringVal("3")},
		{`strrev("ab")`, cty.StringVal("ba")},
		{`length(service.tags)`, cty.NumberIntVal(1)},
		{`run.deploy`, cty.True},
		{`var.region`, cty.StringVal("eu")},
	}
	cfg := &Config{VarValues: cty.ObjectVal(map[string]cty.Value{"region": cty.StringVal("eu")})}
	ctx := cfg.EvalContext(cty.ObjectVal(map[string]cty.Value{"deploy": cty.True}), ServiceValue(&Service{Tags: []string{"x"}}))
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, diags := mustExpr(t, tt.expr).Value(ctx)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			if !got.RawEquals(tt.want) {
				t.Errorf("%s = %#v, want %#v", tt.expr, got, tt.want)
			}
		})
	}
	var nilCfg *Config
	if _, diags := mustExpr(t, "run.x").Value(nilCfg.EvalContext(cty.NilVal, cty.NilVal)); !diags.HasErrors() {
		t.Error("run.x on an empty run object should be an error")
	}
}

func mustExpr(t *testing.T, src string) hcl.Expression {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "test", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return expr
}

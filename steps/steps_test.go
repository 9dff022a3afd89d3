package steps

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/planner"
)

func TestTypesHaveNamesAndRollbacks(t *testing.T) {
	want := map[string]struct {
		check    bool
		rollback bool
	}{
		TypeHealthCheck:     {check: true},
		TypeBackupUnit:      {rollback: true},
		TypeRsync:           {rollback: true},
		TypeRelease:         {rollback: true},
		TypeSwitchRelease:   {rollback: true},
		TypeExec:            {rollback: true},
		TypeReloadOrRestart: {rollback: true},
		TypeRestart:         {rollback: true},
		TypeStart:           {rollback: true},
		TypeStop:            {rollback: true},
		TypeStabilize:       {check: true},
		TypeHAProxyDrain:    {rollback: true},
		TypeHAProxyReady:    {rollback: true},
		TypeNginxUpstream:   {rollback: true},
		TypeBlueGreen:       {rollback: true},
	}
	types := Types()
	if len(types) != len(want) {
		t.Errorf("Types() has %d types, want %d", len(types), len(want))
	}
	for name, w := range want {
		st, ok := types[name]
		if !ok {
			t.Errorf("Types() lacks %q", name)
			continue
		}
		if st.Name != name {
			t.Errorf("%s: Name = %q", name, st.Name)
		}
		if st.Check != w.check {
			t.Errorf("%s: Check = %v, want %v", name, st.Check, w.check)
		}
		if (st.Rollback != "") != w.rollback {
			t.Errorf("%s: Rollback = %q, want set = %v", name, st.Rollback, w.rollback)
		}
	}
}

// decodeStep decodes src as a step body with the type's spec and runs its
// Validate, as the planner does.
func decodeStep(t *testing.T, typ, src string) (map[string]cty.Value, hcl.Diagnostics) {
	t.Helper()
	st, ok := Types()[typ]
	if !ok {
		t.Fatalf("no step type %q", typ)
	}
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	val, diags := hcldec.Decode(f.Body, st.Spec, nil)
	if diags.HasErrors() {
		return nil, diags
	}
	args := val.AsValueMap()
	if st.Validate != nil {
		attrs, _ := f.Body.JustAttributes()
		rng := func(name string) hcl.Range {
			if a, ok := attrs[name]; ok {
				return a.Expr.Range()
			}
			return f.Body.MissingItemRange()
		}
		diags = append(diags, st.Validate(args, rng)...)
	}
	return args, diags
}

func TestTypesDecode(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		src     string
		summary string // "" = no error
		line    int    // of the diagnostic's subject, when summary is set
	}{
		{"health empty", TypeHealthCheck, ``, "", 0},
		{"health overrides", TypeHealthCheck, "timeout = \"5s\"\nretries = 5\ninterval = \"200ms\"", "", 0},
		{"health bad interval", TypeHealthCheck, "timeout = \"5s\"\ninterval = \"soon\"", "Invalid duration", 2},
		{"health zero retries", TypeHealthCheck, `retries = 0`, "Invalid retries count", 1},
		{"health fractional retries", TypeHealthCheck, `retries = 1.5`, "Invalid retries count", 1},
		{"backup unit", TypeBackupUnit, `unit = "x.service"`, "", 0},
		{"rsync full", TypeRsync, "from = \"/a\"\nto = \"/b\"\nexclude = [\".env\", \"node_modules\"]\ndelete = false", "", 0},
		{"rsync missing to", TypeRsync, `from = "/a"`, "Missing required argument", 0},
		{"rsync unknown arg", TypeRsync, "from = \"/a\"\nto = \"/b\"\ncompress = true", "Unsupported argument", 3},
		{"rsync delete wrong type", TypeRsync, "from = \"/a\"\nto = \"/b\"\ndelete = \"sure\"", "Incorrect attribute value type", 3},
		{"exec full", TypeExec, "command = [\"npx\", \"prisma\"]\ndir = \"/srv\"\nenv = { A = \"1\" }\ntimeout = \"2m\"\nrollback_command = [\"true\"]", "", 0},
		{"exec missing command", TypeExec, `dir = "/srv"`, "Missing required argument", 0},
		{"exec empty command", TypeExec, `command = []`, "Empty command", 1},
		{"exec empty program", TypeExec, `command = ["", "x"]`, "Empty command", 1},
		{"exec empty rollback", TypeExec, "command = [\"x\"]\nrollback_command = []", "Empty command", 2},
		{"exec bad timeout", TypeExec, "command = [\"x\"]\ntimeout = \"5\"", "Invalid duration", 2},
		{"exec negative timeout", TypeExec, "command = [\"x\"]\ntimeout = \"-5s\"", "Invalid duration", 2},
		{"reload timeout", TypeReloadOrRestart, `timeout = "1m"`, "", 0},
		{"restart unit", TypeRestart, "unit = \"y.service\"\ntimeout = \"1m\"", "", 0},
		{"stop bad timeout", TypeStop, `timeout = "x"`, "Invalid duration", 1},
		{"stabilize", TypeStabilize, `duration = "30s"`, "", 0},
		{"stabilize missing duration", TypeStabilize, ``, "Missing required argument", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := decodeStep(t, tt.typ, tt.src)
			if tt.summary == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected diagnostics: %v", diags)
				}
				return
			}
			if len(diags) == 0 {
				t.Fatalf("no diagnostic, want %q", tt.summary)
			}
			d := diags[0]
			if d.Summary != tt.summary {
				t.Fatalf("summary = %q, want %q (%v)", d.Summary, tt.summary, diags)
			}
			if tt.line > 0 && (d.Subject == nil || d.Subject.Start.Line != tt.line) {
				t.Errorf("subject = %v, want line %d", d.Subject, tt.line)
			}
			if strings.HasSuffix(d.Summary, ".") {
				t.Errorf("summary %q ends with a period", d.Summary)
			}
		})
	}
}

func TestBuildFromDecodedArgs(t *testing.T) {
	// Every type builds from what its own spec decodes, nulls included.
	samples := map[string]string{
		TypeHealthCheck:     `retries = 2`,
		TypeBackupUnit:      ``,
		TypeRsync:           "from = \"/a\"\nto = \"/b\"",
		TypeExec:            `command = ["true"]`,
		TypeReloadOrRestart: ``,
		TypeRestart:         ``,
		TypeStart:           ``,
		TypeStop:            ``,
		TypeStabilize:       `duration = "1s"`,
	}
	b := newScripted().builder()
	for typ, src := range samples {
		args, diags := decodeStep(t, typ, src)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", typ, diags)
		}
		if _, err := b.build(testService(), &planner.Step{Name: "s", Type: typ, Args: args}); err != nil {
			t.Errorf("%s: build: %v", typ, err)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		b    *builder
		step *planner.Step
		want string
	}{
		{"unknown type", newScripted().builder(), &planner.Step{Name: "x", Type: "teleport"}, `unknown step type "teleport"`},
		{"no backend", &builder{}, &planner.Step{Name: "r", Type: TypeRestart}, "no systemd backend"},
		{"bad duration", newScripted().builder(), &planner.Step{Name: "s", Type: TypeStabilize,
			Args: map[string]cty.Value{"duration": cty.StringVal("later")}}, `argument "duration"`},
		{"missing duration", newScripted().builder(), &planner.Step{Name: "s", Type: TypeStabilize}, `"duration" is required`},
		{"unknown value", newScripted().builder(), &planner.Step{Name: "s", Type: TypeExec,
			Args: map[string]cty.Value{"command": cty.UnknownVal(cty.List(cty.String))}}, "not known"},
		{"wrong type", newScripted().builder(), &planner.Step{Name: "s", Type: TypeExec,
			Args: map[string]cty.Value{"command": cty.StringVal("ls -l")}}, `argument "command"`},
		{"empty rollback", newScripted().builder(), &planner.Step{Name: "s", Type: TypeExec,
			Args: map[string]cty.Value{"command": cty.ListVal([]cty.Value{cty.StringVal("true")}), "rollback_command": cty.ListValEmpty(cty.String)}}, "rollback_command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.b.build(testService(), tt.step)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("build error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// A nil service or step is an error, never a panic.
	if _, err := newScripted().builder().build(nil, nil); err == nil {
		t.Error("build(nil, nil) succeeded")
	}
}

func TestEstimates(t *testing.T) {
	h := &planner.Health{Kind: "http", Timeout: 10 * time.Second, Retries: 3, Interval: time.Second}
	tests := []struct {
		typ, src string
		want     planner.Span
	}{
		{TypeHealthCheck, ``, planner.Span{Worst: 32 * time.Second}},
		{TypeHealthCheck, "timeout = \"2s\"\nretries = 2\ninterval = \"500ms\"", planner.Span{Worst: 4500 * time.Millisecond}},
		{TypeStabilize, `duration = "30s"`, planner.Span{Typical: 30 * time.Second, Worst: 62 * time.Second}},
		{TypeExec, `command = ["true"]`, planner.Span{Worst: 5 * time.Minute}},
		{TypeExec, "command = [\"true\"]\ntimeout = \"90s\"", planner.Span{Worst: 90 * time.Second}},
		{TypeRestart, `timeout = "1m"`, planner.Span{Worst: time.Minute}},
		{TypeReloadOrRestart, ``, planner.Span{Worst: 5 * time.Minute}},
	}
	for _, tt := range tests {
		args, diags := decodeStep(t, tt.typ, tt.src)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if got := Types()[tt.typ].Estimate(args, h); got != tt.want {
			t.Errorf("%s {%s}: Estimate = %v, want %v", tt.typ, tt.src, got, tt.want)
		}
	}
	// A nil health takes CheckHealth's defaults (30s, 3, 1s).
	if got := Types()[TypeHealthCheck].Estimate(nil, nil); got.Worst != 92*time.Second {
		t.Errorf("default health estimate = %v", got)
	}
}

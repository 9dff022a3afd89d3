package dsl

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// deepPlan is the hostile test's plan: `default = [[[[...` 100,000 levels
// deep, 200 KB. Parsed, it takes Go's stack past 1 GB, a fatal error that
// kills the process (no recover can catch it).
func deepPlan() string {
	return "variable \"x\" {\n  default = " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n}\n"
}

// TestHostileFilesGiveOneDiagnostic checks the bounds on what is parsed:
// each hostile file gives one short diagnostic with a position, and the
// rendered text is short and holds no raw control characters.
func TestHostileFilesGiveOneDiagnostic(t *testing.T) {
	binary := make([]byte, 160<<10)
	for i := range binary {
		binary[i] = byte(i*7 + i/3) // NULs, ESC, invalid UTF-8, no newlines
	}
	binary[0], binary[1], binary[2] = 'A', 'B', 0 // text first, then a NUL
	tests := []struct {
		name    string
		src     string
		summary string
		where   string
	}{
		{"100k nested brackets", deepPlan(), "Nesting too deep", "main.hcl:2:"},
		{"nested function calls", "x = " + strings.Repeat("f(", 5000) + "\n", "Nesting too deep", "main.hcl:1:"},
		{"nested interpolation", "x = " + strings.Repeat(`"${`, 5000) + "\n", "Nesting too deep", "main.hcl:1:"},
		{"100k unary operators", "x = " + strings.Repeat("!", 100000) + "true\n", "Expression too long", "main.hcl:1:"},
		{"binary operator chain across lines", "x = (" + strings.Repeat("1 +\n", 20000) + "1)\n", "Expression too long", "main.hcl:"},
		{"binary file", string(binary), "Not a text file", "main.hcl:1:3"},
		{"invalid UTF-8", "service \"a\" {\n  unit = \"\xff\xfe\"\n}\n", "Not a text file", "main.hcl:2:11"},
		{"too large", "# " + strings.Repeat("x", MaxFileSize) + "\n", "Plan file too large", "main.hcl:1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load("main.hcl", memFS{"main.hcl": tt.src}.options(nil))
			if len(diags) != 1 || diags[0].Summary != tt.summary || diags[0].Severity != hcl.DiagError {
				t.Fatalf("diagnostics = %v, want one error %q", diags, tt.summary)
			}
			var sb strings.Builder
			if err := WriteDiagnostics(&sb, cfg.Sources, diags, false); err != nil {
				t.Fatal(err)
			}
			out := sb.String()
			if !strings.Contains(out, "on "+tt.where) {
				t.Errorf("output does not name %s:\n%s", tt.where, out)
			}
			if len(out) > 2000 {
				t.Errorf("output is %d bytes, want a short diagnostic:\n%.2000s", len(out), out)
			}
			for i, c := range out {
				if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || c == 0xfffd {
					t.Fatalf("output holds control character %U at %d:\n%q", c, i, out)
				}
			}
		})
	}
}

// TestRealPlansAreWithinTheBounds: the canned plans pass the bounds.
func TestBoundsLeaveOrdinaryPlansAlone(t *testing.T) {
	src := `
pipeline "api" {
  step "exec" "x" {
    if      = !run.skip_migrations && (run.deploy || length(service.tags) > 0)
    command = ["sh", "-c", "echo ${join(",", [for t in service.tags : upper("${t}-${1 + 2 * 3}")])}"]
  }
}
`
	if d := CheckFileText("main.hcl", []byte(src)); d != nil {
		t.Fatalf("ordinary plan refused: %v", d)
	}
	if d := CheckFileText("deep.hcl", []byte("x = "+strings.Repeat("[", MaxNesting)+strings.Repeat("]", MaxNesting)+"\n")); d != nil {
		t.Fatalf("nesting of exactly MaxNesting refused: %v", d)
	}
}

// TestVarValueIsBounded: a --var value is parsed as an expression when
// the variable's default is a list or map; a hostile one is refused.
func TestVarValueIsBounded(t *testing.T) {
	files := memFS{"main.hcl": `variable "zones" { default = ["a"] }` + "\n"}
	_, diags := Load("main.hcl", files.options(map[string]string{"zones": strings.Repeat("[", 100000)}))
	if len(diags) != 1 || diags[0].Summary != "Invalid value for variable" || !strings.Contains(diags[0].Detail, "nesting too deep") {
		t.Fatalf("diagnostics = %v, want Invalid value for variable: nesting too deep", diags)
	}
	if len(diags[0].Detail) > 1000 {
		t.Errorf("detail is %d bytes, want it short", len(diags[0].Detail))
	}
}

func TestShownLine(t *testing.T) {
	rng := func(c1, c2 int) hcl.Range {
		return hcl.Range{Start: hcl.Pos{Line: 1, Column: c1}, End: hcl.Pos{Line: 1, Column: c2}}
	}
	tests := []struct {
		name, line    string
		r             hcl.Range
		shown, carets string
	}{
		{"plain", `unit = "x"`, rng(8, 11), `unit = "x"`, `       ^^^`},
		{"tab kept", "\tunit = 1", rng(2, 6), "\tunit = 1", "\t^^^^"},
		{"escape escaped", "a\x1b[31mb", rng(2, 3), `a\x1b[31mb`, ` ^^^^`},
		{"empty range", "abc", rng(2, 2), "abc", " ^"},
		{"long line cut around the subject", strings.Repeat("a", 500) + "X" + strings.Repeat("b", 500), rng(501, 502),
			"…" + strings.Repeat("a", 40) + "X" + strings.Repeat("b", 119) + "…", strings.Repeat(" ", 41) + "^"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shown, carets := ShownLine(tt.line, tt.r)
			if shown != tt.shown || carets != tt.carets {
				t.Errorf("ShownLine:\n got %q\n     %q\nwant %q\n     %q", shown, carets, tt.shown, tt.carets)
			}
		})
	}
}

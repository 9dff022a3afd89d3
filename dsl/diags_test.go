package dsl

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestDiagnostics loads each broken plan under testdata/diags and compares
// the rendered diagnostics with the case's want.txt. Every case holds two
// independent problems, so it also checks that decoding went on after the
// first.
func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want []string // the Summary of every diagnostic, in order
	}{
		{"syntax_error", nil, []string{"Invalid expression", "Unsupported argument"}},
		{"unknown_block", nil, []string{"Unsupported block type", "Unsupported block type"}},
		{"unknown_attribute", nil, []string{"Unsupported argument", "Unsupported argument"}},
		{"wrong_type", nil, []string{`Invalid value for "tags"`, `Invalid value for "retries"`}},
		{"bad_duration", nil, []string{"Invalid duration", "Invalid duration", `Invalid value for "health_retries"`, "Invalid duration", "Invalid duration", `Invalid value for "retries"`}},
		{"bad_url", nil, []string{"Invalid URL", "Invalid URL"}},
		{"bad_tcp_address", nil, []string{"Invalid address", "Invalid address"}},
		{"invalid_unit_name", nil, []string{"Invalid unit name", "Invalid unit name"}},
		{"duplicate_service", nil, []string{"Duplicate service", "Duplicate step"}},
		{"duplicate_across_include", nil, []string{"Duplicate service", "Duplicate plan"}},
		{"include_no_match", nil, []string{"Include matches no files", "Missing file"}},
		{"undeclared_var", map[string]string{"regon": "us", "replicas": "three"}, []string{"Value for undeclared variable", "Invalid value for variable"}},
		{"missing_variable", nil, []string{"Missing value for variable", "Missing value for variable"}},
		{"bad_on_failure", nil, []string{"Invalid on_failure policy", `Invalid value for "max_parallel"`}},
		{"unknown_health_kind", nil, []string{"Unknown health check kind", "Duplicate health block"}},
		{"run_in_service", nil, []string{"Invalid reference", "Invalid reference"}},
		{"bad_select", nil, []string{"Unsupported selection key", `Invalid value for "max_unavailable"`}},
		{"duplicate_blocks", nil, []string{"Duplicate variable", "Duplicate defaults block"}},
		{"bad_host", nil, []string{"Invalid host address", `Invalid value for "port"`, "Invalid systemd bus address", "Duplicate host", "Invalid host name", `Invalid value for "serial"`, `Invalid value for "max_unavailable"`}},
		{"bad_instances", nil, []string{"Instances of a unit that is not a template", "Template unit without instances", "Duplicate instance", "Invalid instances", "No port for instance"}},
		{"bad_colors", nil, []string{"Colors of a unit that is not a template", "Colors and instances", "Invalid colors", "Invalid colors"}},
		{"bad_canary", nil, []string{`Invalid value for "count"`, "Canary interval longer than its observation", "Missing required argument", "JSON path without a bound", "Unsupported argument", "Unknown analysis kind"}},
		{"health_kind_args", nil, []string{"Missing required argument", "Unsupported argument", "Empty command"}},
		{"bad_notify", nil, []string{"Invalid URL", "Unknown event", "Header values in the plan", "Credentials in URL", "Unsupported argument",
			"Invalid environment variable name", "Invalid header name", "Unknown notification kind", "Duplicate notification"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "diags", tt.name)
			cfg, diags := Load(filepath.Join(dir, "main.hcl"), LoadOptions{Vars: tt.vars})
			if cfg == nil {
				t.Fatal("Load returned a nil Config")
			}

			var got []string
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					t.Errorf("diagnostic %q has severity %v, want error", d.Summary, d.Severity)
				}
				got = append(got, d.Summary)
			}
			if !equalStrings(got, tt.want) {
				t.Errorf("summaries:\n got %q\nwant %q", got, tt.want)
			}

			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, cfg.Sources, diags, false); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("diagnostics differ from %s:\n--- got\n%s\n--- want\n%s", golden, buf.Bytes(), want)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

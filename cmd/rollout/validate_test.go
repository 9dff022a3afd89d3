package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/steps"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
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
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestValidateFormats(t *testing.T) {
	for _, format := range []string{"text", "json", "github"} {
		t.Run(format, func(t *testing.T) {
			ios, out, errOut := testStreams()
			err := validateRun(&ValidateOptions{IO: ios, Files: []string{"testdata/broken/main.hcl"}, Format: format})
			if code := exitCode(err); code != exitFailed {
				t.Fatalf("exit code = %d (%v), want %d", code, err, exitFailed)
			}
			if errOut.Len() != 0 {
				t.Errorf("stderr = %q, want nothing", errOut)
			}
			golden(t, "broken/want."+format, out.Bytes())
		})
	}
}

func TestValidateJSONShape(t *testing.T) {
	ios, out, _ := testStreams()
	_ = validateRun(&ValidateOptions{IO: ios, Files: []string{"testdata/broken/main.hcl"}, Format: "json"})
	var report jsonReport
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatal(err)
	}
	if report.Valid || report.ErrorCount != 2 {
		t.Fatalf("valid=%v errors=%d, want invalid with 2 errors (both problems collected)", report.Valid, report.ErrorCount)
	}
	for _, d := range report.Diagnostics {
		if d.Range == nil || d.Range.Start.Line == 0 || d.Snippet == nil {
			t.Errorf("diagnostic %q lacks a range or snippet: %+v", d.Summary, d)
		}
	}
}

func TestValidateCannedPlans(t *testing.T) {
	files, _ := filepath.Glob("../../plans/*.hcl")
	var roots []string
	for _, f := range files {
		src, _ := os.ReadFile(f)
		if strings.Contains(string(src), "\nplan \"") {
			roots = append(roots, f)
		}
	}
	if len(roots) < 4 {
		t.Fatalf("found %d canned plans, want at least 4: %v", len(roots), roots)
	}
	ios, out, _ := testStreams()
	if err := validateRun(&ValidateOptions{IO: ios, Files: roots, Format: "text"}); err != nil {
		t.Fatalf("canned plans do not validate: %v\n%s", err, out)
	}
	if strings.Contains(out.String(), "Warning") {
		t.Errorf("canned plans have warnings:\n%s", out)
	}
}

func TestValidateUsage(t *testing.T) {
	ios, _, _ := testStreams()
	err := validateRun(&ValidateOptions{IO: ios, Files: []string{"testdata/broken/main.hcl"}, Format: "xml"})
	if code := exitCode(err); code != exitUsage {
		t.Errorf("exit code = %d, want %d", code, exitUsage)
	}
}

// TestShowPlatformOrder checks the contract's promise about the canned
// platform plan: at least 75 services, and an order in which every service
// comes after all of its dependencies.
func TestShowPlatformOrder(t *testing.T) {
	ios, out, errOut := testStreams()
	err := showRun(&ShowOptions{IO: ios, File: "../../plans/platform.hcl", Format: "json", Flags: planFlags{Parallel: 1}})
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var plan struct {
		Plan     string `json:"plan"`
		Services []struct {
			Name      string   `json:"name"`
			Unit      string   `json:"unit"`
			DependsOn []string `json:"depends_on"`
			Wave      int      `json:"wave"`
			Steps     []struct {
				Name     string         `json:"name"`
				Type     string         `json:"type"`
				Args     map[string]any `json:"args"`
				Rollback *string        `json:"rollback"`
			} `json:"steps"`
		} `json:"services"`
		Order []string   `json:"order"`
		Waves [][]string `json:"waves"`
	}
	if err := json.Unmarshal(out.Bytes(), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Services) < 75 {
		t.Fatalf("platform has %d services, want at least 75", len(plan.Services))
	}
	if len(plan.Order) != len(plan.Services) {
		t.Fatalf("order has %d names for %d services", len(plan.Order), len(plan.Services))
	}
	pos := map[string]int{}
	for i, name := range plan.Order {
		pos[name] = i
	}
	waved := 0
	for _, w := range plan.Waves {
		waved += len(w)
	}
	if waved != len(plan.Services) {
		t.Errorf("waves hold %d names for %d services", waved, len(plan.Services))
	}
	for _, s := range plan.Services {
		if len(s.Steps) == 0 || s.Unit == "" {
			t.Errorf("service %s has no unit or steps", s.Name)
		}
		for _, dep := range s.DependsOn {
			if pos[dep] >= pos[s.Name] {
				t.Errorf("%s (position %d) comes before its dependency %s (position %d)", s.Name, pos[s.Name], dep, pos[dep])
			}
		}
		for _, st := range s.Steps {
			if st.Rollback == nil {
				t.Errorf("%s step %s has no rollback field", s.Name, st.Name)
			}
		}
	}
	// The reference's three dependency examples, in order.
	for _, chain := range [][]string{
		{"sso.postgresql", "sso.api"}, {"sso.redis", "sso.api"},
		{"sso.api", "merchant.api", "marketplace.api"},
		{"seo.redis", "seo.rag-retrieval", "seo.classifier"},
	} {
		for i := 1; i < len(chain); i++ {
			if pos[chain[i-1]] >= pos[chain[i]] {
				t.Errorf("%s should come before %s", chain[i-1], chain[i])
			}
		}
	}
}

func TestShowIsDeterministic(t *testing.T) {
	for _, format := range []string{"text", "json", "dot", "mermaid"} {
		var first string
		for i := 0; i < 3; i++ {
			ios, out, errOut := testStreams()
			if err := showRun(&ShowOptions{IO: ios, File: "../../plans/platform.hcl", Format: format, Flags: planFlags{Parallel: 1}}); err != nil {
				t.Fatalf("%s: %v\n%s", format, err, errOut)
			}
			if i == 0 {
				first = out.String()
			} else if out.String() != first {
				t.Fatalf("%s output changed between runs", format)
			}
		}
	}
}

func TestShowInvalidPlanIsUsageError(t *testing.T) {
	ios, out, errOut := testStreams()
	err := showRun(&ShowOptions{IO: ios, File: "testdata/broken/main.hcl", Format: "text", Flags: planFlags{Parallel: 1}})
	if code := exitCode(err); code != exitUsage {
		t.Fatalf("exit code = %d, want %d", code, exitUsage)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out)
	}
	if !strings.Contains(errOut.String(), "testdata/broken/main.hcl:10:17") {
		t.Errorf("stderr lacks the file:line:column of the problem:\n%s", errOut)
	}
}

func TestFmt(t *testing.T) {
	dir := t.TempDir()
	messy := filepath.Join(dir, "messy.hcl")
	tidy := filepath.Join(dir, "tidy.hcl")
	broken := filepath.Join(dir, "broken.hcl")
	os.WriteFile(messy, []byte("service \"a\" {\nunit=\"a.service\"\n  type   = \"x\"\n}\n"), 0o640)
	os.WriteFile(tidy, []byte("service \"a\" {\n  unit = \"a.service\"\n}\n"), 0o644)
	os.WriteFile(broken, []byte("service \"a\" {\n"), 0o644)

	ios, out, _ := testStreams()
	err := fmtRun(&FmtOptions{IO: ios, Files: []string{messy, tidy}, Check: true, Diff: true})
	if code := exitCode(err); code != exitFailed {
		t.Fatalf("--check exit code = %d, want %d", code, exitFailed)
	}
	if !strings.Contains(out.String(), "+  unit = \"a.service\"") || strings.Contains(out.String(), tidy) {
		t.Errorf("--check --diff output:\n%s", out)
	}
	if src, _ := os.ReadFile(messy); !strings.Contains(string(src), "unit=\"a.service\"") {
		t.Errorf("--check rewrote the file")
	}

	ios, out, _ = testStreams()
	if err := fmtRun(&FmtOptions{IO: ios, Files: []string{messy, tidy}}); err != nil {
		t.Fatal(err)
	}
	want := "service \"a\" {\n  unit = \"a.service\"\n  type = \"x\"\n}\n"
	if src, _ := os.ReadFile(messy); string(src) != want {
		t.Errorf("formatted file:\n%s\nwant:\n%s", src, want)
	}
	if info, _ := os.Stat(messy); info.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640 kept", info.Mode().Perm())
	}
	if out.String() != messy+"\n" {
		t.Errorf("listed %q, want only the rewritten file", out)
	}

	ios, _, errOut := testStreams()
	err = fmtRun(&FmtOptions{IO: ios, Files: []string{broken}})
	if code := exitCode(err); code != exitUsage {
		t.Errorf("broken file exit code = %d, want %d", code, exitUsage)
	}
	if src, _ := os.ReadFile(broken); string(src) != "service \"a\" {\n" {
		t.Errorf("broken file was changed")
	}
	if !strings.Contains(errOut.String(), "Error:") {
		t.Errorf("no diagnostic for the broken file: %q", errOut)
	}
}

// TestValidateGitHubPaths: annotations name files relative to the
// repository (GITHUB_WORKSPACE, else the working directory), however the
// file was named on the command line.
func TestValidateGitHubPaths(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(wd, "testdata", "broken", "main.hcl")
	tests := []struct {
		name, file, workspace, want string
	}{
		{"absolute path, no workspace", abs, "", "file=testdata/broken/main.hcl,"},
		{"relative path, workspace above", "testdata/broken/main.hcl", filepath.Dir(filepath.Dir(wd)), "file=cmd/rollout/testdata/broken/main.hcl,"},
		{"absolute path, workspace above", abs, filepath.Dir(filepath.Dir(wd)), "file=cmd/rollout/testdata/broken/main.hcl,"},
		{"outside the workspace", "testdata/broken/main.hcl", filepath.Join(wd, "testdata", "events"), "file=" + abs + ","},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, out, _ := testStreams()
			ios.Getenv = func(k string) string {
				if k == "GITHUB_WORKSPACE" {
					return tt.workspace
				}
				return ""
			}
			_ = validateRun(&ValidateOptions{IO: ios, Files: []string{tt.file}, Format: "github"})
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("want 2 annotations:\n%s", out)
			}
			for _, l := range lines {
				if !strings.Contains(l, tt.want) {
					t.Errorf("annotation lacks %q:\n%s", tt.want, l)
				}
			}
		})
	}
}

// TestEmptyPlan: a plan with no services is valid with a warning, and
// `run` refuses it with exit 2 before it reaches systemd.
func TestEmptyPlan(t *testing.T) {
	file := filepath.Join(t.TempDir(), "empty.hcl")
	if err := os.WriteFile(file, []byte("defaults {\n  health_timeout = \"3s\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ios, out, _ := testStreams()
	if err := validateRun(&ValidateOptions{IO: ios, Files: []string{file}, Format: "text"}); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !strings.Contains(out.String(), "Warning: Plan selects no services") || !strings.Contains(out.String(), "1 warning") {
		t.Errorf("validate does not warn:\n%s", out)
	}

	for _, dry := range []bool{false, true} {
		ios, _, _ = testStreams()
		opts := &RunOptions{IO: ios, File: file, Systemd: func(context.Context, bool) (steps.Backend, error) {
			t.Fatal("an empty plan reached systemd")
			return nil, nil
		}}
		opts.Flags.DryRun = dry
		err := runRun(opts)
		if code := exitCode(err); code != exitUsage || !strings.Contains(err.Error(), `plan "empty" selects no services, so there is nothing to run`) {
			t.Errorf("run (dry run %v): %v (exit %d), want exit 2 saying there is nothing to run", dry, err, code)
		}
	}
}

// TestValidateDeterministic: the same plan gives the same bytes on every
// run, in every format. Several problems in one step body used to come out
// in map order (a different order from run to run).
func TestValidateDeterministic(t *testing.T) {
	for _, format := range []string{"text", "json", "github"} {
		t.Run(format, func(t *testing.T) {
			var first string
			for i := range 30 {
				ios, out, _ := testStreams()
				_ = validateRun(&ValidateOptions{IO: ios, Files: []string{"testdata/many/main.hcl"}, Format: format})
				if i == 0 {
					first = out.String()
					golden(t, "many/want."+format, out.Bytes())
					continue
				}
				if out.String() != first {
					t.Fatalf("run %d printed other bytes than run 1:\n--- run 1\n%s\n--- run %d\n%s", i+1, first, i+1, out)
				}
			}
		})
	}
}

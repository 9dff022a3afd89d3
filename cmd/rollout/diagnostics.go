package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/rollout-sh/rollout/dsl"
)

// Diagnostic output formats of `plan validate`.
const (
	formatText   = "text"
	formatJSON   = "json"
	formatGitHub = "github"
)

// writeDiagsText prints diagnostics as Terraform does: severity and summary,
// file:line:column, the source line with the subject marked, then the
// detail (why and what to do).
func writeDiagsText(w io.Writer, sources map[string][]byte, diags hcl.Diagnostics, color bool) error {
	return dsl.WriteDiagnostics(w, sources, diags, color)
}

// jsonDiag is one diagnostic in `--format json`, shaped like Terraform's
// `validate -json` so existing tooling can read it.
type jsonDiag struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail,omitempty"`
	Range    *jsonRange `json:"range,omitempty"`
	Snippet  *jsonSnip  `json:"snippet,omitempty"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

type jsonSnip struct {
	Code      string `json:"code"`
	StartLine int    `json:"start_line"`
}

type jsonReport struct {
	Valid        bool       `json:"valid"`
	ErrorCount   int        `json:"error_count"`
	WarningCount int        `json:"warning_count"`
	Files        []string   `json:"files"`
	Diagnostics  []jsonDiag `json:"diagnostics"`
}

func toJSONDiags(sources map[string][]byte, diags hcl.Diagnostics) []jsonDiag {
	out := make([]jsonDiag, 0, len(diags))
	for _, d := range diags {
		jd := jsonDiag{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if r := d.Subject; r != nil {
			jd.Range = &jsonRange{
				Filename: r.Filename,
				Start:    jsonPos{r.Start.Line, r.Start.Column, r.Start.Byte},
				End:      jsonPos{r.End.Line, r.End.Column, r.End.Byte},
			}
			if line, ok := sourceLine(sources, r); ok {
				// As the text format shows it: control characters
				// escaped, a very long line cut around the subject.
				code, _ := dsl.ShownLine(line, *r)
				jd.Snippet = &jsonSnip{Code: code, StartLine: r.Start.Line}
			}
		}
		out = append(out, jd)
	}
	return out
}

// sourceLine returns the line of the file where r starts.
func sourceLine(sources map[string][]byte, r *hcl.Range) (string, bool) {
	src, ok := sources[r.Filename]
	if !ok || r.Start.Line < 1 {
		return "", false
	}
	lines := strings.Split(string(src), "\n")
	if r.Start.Line > len(lines) {
		return "", false
	}
	return strings.TrimRight(lines[r.Start.Line-1], "\r"), true
}

func writeDiagsJSON(w io.Writer, report jsonReport) error {
	if report.Diagnostics == nil {
		report.Diagnostics = []jsonDiag{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

// githubBase is the directory annotation paths are relative to: the
// repository's checkout (GITHUB_WORKSPACE), else the working directory.
func githubBase(getenv func(string) string) string {
	if ws := getenv("GITHUB_WORKSPACE"); ws != "" {
		return ws
	}
	wd, _ := os.Getwd()
	return wd
}

// githubPath is name relative to base, as an annotation's file property
// must be (GitHub matches it against the repository's paths). A file
// outside base keeps its absolute path: it cannot be annotated anyway.
func githubPath(name, base string) string {
	abs, err := filepath.Abs(name)
	if err != nil || base == "" {
		return filepath.ToSlash(name)
	}
	rel, err := filepath.Rel(base, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return filepath.ToSlash(abs)
	}
	return filepath.ToSlash(rel)
}

// writeDiagsGitHub prints GitHub Actions workflow commands, which GitHub
// shows as annotations on the pull request's changed lines. File paths are
// made relative to base (githubBase).
func writeDiagsGitHub(w io.Writer, diags hcl.Diagnostics, base string) error {
	for _, d := range diags {
		level := "error"
		if d.Severity == hcl.DiagWarning {
			level = "warning"
		}
		var props []string
		if r := d.Subject; r != nil {
			props = append(props,
				"file="+ghProperty(githubPath(r.Filename, base)),
				fmt.Sprintf("line=%d", r.Start.Line),
				fmt.Sprintf("col=%d", r.Start.Column),
				fmt.Sprintf("endLine=%d", r.End.Line),
				fmt.Sprintf("endColumn=%d", r.End.Column))
		}
		props = append(props, "title="+ghProperty(d.Summary))
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if _, err := fmt.Fprintf(w, "::%s %s::%s\n", level, strings.Join(props, ","), ghData(msg)); err != nil {
			return err
		}
	}
	return nil
}

// ghData and ghProperty escape as the GitHub Actions toolkit does.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

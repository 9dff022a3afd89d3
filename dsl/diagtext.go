package dsl

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcled"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// WriteDiagnostics prints diagnostics for a person, as Terraform does, with
// the position as file:line:column so editors and terminals can jump to it,
// the enclosing block, the source line with the subject marked by carets,
// and the detail (why, and what to do):
//
//	Error: Unknown dependency
//
//	  on plans/platform.hcl:12:20, in service "sso.api":
//	  12:   depends_on = ["sso.postgress"]
//	                      ^^^^^^^^^^^^^^^
//
//	No service is named "sso.postgress". Did you mean "sso.postgresql"?
//
// sources maps file names (as in the diagnostics' ranges) to their bytes,
// as Config.Sources does. color adds ANSI colours for a terminal.
func WriteDiagnostics(w io.Writer, sources map[string][]byte, diags hcl.Diagnostics, color bool) error {
	bw := bufio.NewWriter(w)
	parsed := map[string]*hcl.File{}
	for _, d := range diags {
		writeDiagnostic(bw, sources, parsed, d, color)
	}
	return bw.Flush()
}

func writeDiagnostic(w *bufio.Writer, sources map[string][]byte, parsed map[string]*hcl.File, d *hcl.Diagnostic, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	switch d.Severity {
	case hcl.DiagWarning:
		fmt.Fprintf(w, "%s %s\n\n", paint("1;33", "Warning:"), paint("1", d.Summary))
	default:
		fmt.Fprintf(w, "%s %s\n\n", paint("1;31", "Error:"), paint("1", d.Summary))
	}
	if r := d.Subject; r != nil {
		src := sources[r.Filename]
		where := fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
		if ctx := blockContext(parsed, r.Filename, src, r.Start.Byte); ctx != "" {
			where += ", in " + ctx
		}
		fmt.Fprintf(w, "  on %s:\n", where)
		if line, ok := lineAt(src, r.Start.Line); ok {
			prefix := fmt.Sprintf("%d: ", r.Start.Line)
			shown, carets := ShownLine(line, *r)
			fmt.Fprintf(w, "  %s%s\n", prefix, shown)
			fmt.Fprintf(w, "  %s%s\n", strings.Repeat(" ", len(prefix)), paint("31", carets))
		}
		w.WriteString("\n")
	}
	if d.Detail != "" {
		fmt.Fprintf(w, "%s\n\n", d.Detail)
	}
}

// blockContext names the block around byte offset off, such as
// `service "sso.api"`, or "" when it cannot tell.
func blockContext(parsed map[string]*hcl.File, name string, src []byte, off int) string {
	if src == nil {
		return ""
	}
	f, ok := parsed[name]
	if !ok {
		// A file Load refused to parse is not parsed here either.
		if CheckFileText(name, src) == nil {
			f, _ = hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		}
		parsed[name] = f
	}
	if f == nil || f.Body == nil {
		return ""
	}
	return hcled.ContextString(f, off)
}

// lineAt returns line n (1-based) of src without its newline.
func lineAt(src []byte, n int) (string, bool) {
	if src == nil || n < 1 {
		return "", false
	}
	for i := 1; i < n; i++ {
		nl := bytes.IndexByte(src, '\n')
		if nl < 0 {
			return "", false
		}
		src = src[nl+1:]
	}
	if nl := bytes.IndexByte(src, '\n'); nl >= 0 {
		src = src[:nl]
	}
	return strings.TrimRight(string(src), "\r"), true
}

// maxShownLine is how many characters of a source line a diagnostic
// shows; a longer line (a minified or binary file) is cut around the
// subject.
const maxShownLine = 160

// ShownLine returns a source line as it is safe to print in a terminal:
// control characters escaped (\x1b, never the raw byte), and at most
// maxShownLine characters, cut around r's start column. The second result
// marks r's columns with carets beneath it. Whitespace before the mark is
// copied from the line, so tabs line up.
func ShownLine(line string, r hcl.Range) (shown, carets string) {
	runes := []rune(line)
	start := min(max(r.Start.Column-1, 0), len(runes))
	end := len(runes)
	if r.End.Line == r.Start.Line && r.End.Column-1 < end {
		end = max(r.End.Column-1, start)
	}
	pieces := make([]string, len(runes))
	for i, c := range runes {
		switch {
		case c == '\t':
			pieces[i] = "\t"
		case c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0):
			pieces[i] = fmt.Sprintf("\\x%02x", c)
		case c == utf8.RuneError:
			pieces[i] = "\\ufffd"
		default:
			pieces[i] = string(c)
		}
	}
	from, to := 0, len(runes)
	if width(pieces) > maxShownLine {
		from = max(start-maxShownLine/4, 0)
		w := 0
		for to = from; to < len(pieces) && w+len([]rune(pieces[to])) <= maxShownLine; to++ {
			w += len([]rune(pieces[to]))
		}
	}
	var sb, cb strings.Builder
	if from > 0 {
		sb.WriteString("…")
		cb.WriteString(" ")
	}
	for i := from; i < to; i++ {
		sb.WriteString(pieces[i])
		n := len([]rune(pieces[i]))
		switch {
		case i < start && pieces[i] == "\t":
			cb.WriteString("\t")
		case i < start:
			cb.WriteString(strings.Repeat(" ", n))
		case i < end:
			cb.WriteString(strings.Repeat("^", n))
		}
	}
	if to < len(runes) {
		sb.WriteString("…")
	}
	if start >= end || start >= to {
		cb.WriteString("^")
	}
	return sb.String(), strings.TrimRight(cb.String(), " ")
}

func width(pieces []string) int {
	n := 0
	for _, p := range pieces {
		n += len([]rune(p))
	}
	return n
}

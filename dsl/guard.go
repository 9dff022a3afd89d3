package dsl

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Bounds on a plan file, checked before it is parsed. HCL's parser and
// evaluator recurse once per level of nesting and once per operator of a
// chain: a 200 KB file of 100,000 `[` takes Go's stack past its 1 GB limit,
// which is a fatal error, not a panic that could be recovered. Real plans
// are far inside these bounds (the 92-service inventory nests 4 deep and
// has a few dozen operators per file).
const (
	// MaxFileSize is the largest plan file read, in bytes.
	MaxFileSize = 4 << 20
	// MaxNesting is how deeply brackets, braces, parentheses, blocks,
	// quotes and template interpolations may nest.
	MaxNesting = 64
	// MaxOperators is how many operators (arithmetic, logic, comparison,
	// `? :`) one top-level attribute or block may hold. A chain of them is
	// a tree as deep as it is long.
	MaxOperators = 10000
)

// CheckFileText returns a diagnostic when src cannot safely be parsed as a
// plan file: too large, not text, nested too deeply, or too many operators.
// It lexes without recursion, so it is safe on any input. Everything that
// parses plan text (Load, plan fmt, diagnostics printing) calls it first.
func CheckFileText(name string, src []byte) *hcl.Diagnostic {
	return checkText(name, src, hclsyntax.LexConfig)
}

// checkExprText is CheckFileText for a lone expression (a --var value).
func checkExprText(name string, src []byte) *hcl.Diagnostic {
	return checkText(name, src, hclsyntax.LexExpression)
}

func checkText(name string, src []byte, lex func([]byte, string, hcl.Pos) (hclsyntax.Tokens, hcl.Diagnostics)) *hcl.Diagnostic {
	if len(src) > MaxFileSize {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Plan file too large",
			Detail: fmt.Sprintf("%s is %d bytes; a plan file may hold at most %d (%d MiB). Split it into files joined with include, or check that this is the plan you meant.",
				name, len(src), MaxFileSize, MaxFileSize>>20),
			Subject: posRange(name, src, 0).Ptr(),
		}
	}
	if off, why := binaryAt(src); off >= 0 {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Not a text file",
			Detail: fmt.Sprintf("%s holds %s at byte %d, so it is not an HCL plan file (a binary, or a file in another encoding). Give the path of the plan's .hcl file; plan files are UTF-8 text.",
				name, why, off),
			Subject: posRange(name, src, off).Ptr(),
		}
	}
	toks, _ := lex(src, name, hcl.InitialPos)
	depth, ops := 0, 0
	for _, tok := range toks {
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			depth++
			if depth > MaxNesting {
				return &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Nesting too deep",
					Detail: fmt.Sprintf("Brackets, braces, parentheses, quotes and template interpolations nest more than %d levels deep here. A plan needs only a few levels; check for a generated or damaged file.",
						MaxNesting),
					Subject: tok.Range.Ptr(),
				}
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
			hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc, hclsyntax.TokenTemplateSeqEnd:
			if depth > 0 {
				depth--
			}
		case hclsyntax.TokenNewline:
			if depth == 0 {
				ops = 0
			}
		case hclsyntax.TokenStar, hclsyntax.TokenSlash, hclsyntax.TokenPlus,
			hclsyntax.TokenMinus, hclsyntax.TokenPercent, hclsyntax.TokenEqualOp,
			hclsyntax.TokenNotEqual, hclsyntax.TokenLessThan, hclsyntax.TokenLessThanEq,
			hclsyntax.TokenGreaterThan, hclsyntax.TokenGreaterThanEq, hclsyntax.TokenAnd,
			hclsyntax.TokenOr, hclsyntax.TokenBang, hclsyntax.TokenQuestion:
			ops++
			if ops > MaxOperators {
				return &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Expression too long",
					Detail: fmt.Sprintf("This attribute or block holds more than %d operators. A plan needs only a few; check for a generated or damaged file, or split the expression.",
						MaxOperators),
					Subject: tok.Range.Ptr(),
				}
			}
		}
	}
	return nil
}

// binaryAt returns the offset of the first byte that shows src is not UTF-8
// text (a NUL, or an invalid UTF-8 sequence) and what it is, or -1.
func binaryAt(src []byte) (int, string) {
	if i := bytes.IndexByte(src, 0); i >= 0 {
		if !utf8.Valid(src[:i]) {
			return invalidUTF8At(src), "an invalid UTF-8 sequence"
		}
		return i, "a NUL byte"
	}
	if !utf8.Valid(src) {
		return invalidUTF8At(src), "an invalid UTF-8 sequence"
	}
	return -1, ""
}

func invalidUTF8At(src []byte) int {
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// posRange is a one-character range at byte offset off of src, with its
// line and column. Columns count runes, an invalid byte as one, as
// []rune(line) does when the line is shown.
func posRange(name string, src []byte, off int) hcl.Range {
	line, col := 1, 1
	for i := 0; i < off; {
		_, n := utf8.DecodeRune(src[i:off])
		if src[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += n
	}
	start := hcl.Pos{Line: line, Column: col, Byte: off}
	end := start
	if off < len(src) {
		_, n := utf8.DecodeRune(src[off:])
		end = hcl.Pos{Line: line, Column: col + 1, Byte: off + n}
	}
	return hcl.Range{Filename: name, Start: start, End: end}
}

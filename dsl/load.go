package dsl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// LoadOptions controls Load.
type LoadOptions struct {
	// Vars are the --var K=V values as given on the command line. Each is
	// converted to the type of the variable's default (a number default
	// makes "3" a number); an undeclared name is an error diagnostic.
	Vars map[string]string
	// ReadFile and Glob default to os.ReadFile and filepath.Glob; tests and
	// the fuzzer replace them to load from memory.
	ReadFile func(path string) ([]byte, error)
	Glob     func(pattern string) ([]string, error)
}

// attrInclude is the top-level attribute listing further files to read.
const attrInclude = "include"

// fileSchema is the top level of every plan file, root or included.
var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: attrInclude},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: blockVariable, LabelNames: []string{"name"}},
		{Type: blockDefaults},
		{Type: blockPipeline, LabelNames: []string{"name"}},
		{Type: blockService, LabelNames: []string{"name"}},
		{Type: blockPlan, LabelNames: []string{"name"}},
		{Type: blockNotify, LabelNames: []string{"kind", "name"}},
		{Type: blockHost, LabelNames: []string{"name"}},
	},
}

// loadedFile is one parsed file's top-level content, kept until every file
// is read because variables of all files must be decoded before the rest.
type loadedFile struct {
	name    string
	content *hcl.BodyContent
}

// loader reads the root file and its includes. It lives for one Load call.
type loader struct {
	opts  LoadOptions
	cfg   *Config
	files []loadedFile
	diags hcl.Diagnostics
}

// Load reads the root plan file at path, follows its includes (relative to
// the including file, globs allowed, each file read once), and decodes
// everything into a Config. It returns every diagnostic found.
//
// The Config is never nil, so that callers can always print the
// diagnostics with its Sources; when diags.HasErrors() it may be partial
// (Incomplete says whether whole files are missing).
func Load(path string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Glob == nil {
		opts.Glob = filepath.Glob
	}
	l := &loader{
		opts: opts,
		cfg: &Config{
			Root:      path,
			Sources:   map[string][]byte{},
			VarValues: cty.EmptyObjectVal,
		},
	}
	l.readFile(filepath.Clean(path), nil)
	l.decode()
	sortDiagnostics(l.diags, l.cfg.Files)
	return l.cfg, l.diags
}

// sortDiagnostics orders diags as a reader meets them: those without a
// source location first, then by file in load order, then by position.
// Decoding order (variables before the rest, attributes in schema order)
// would otherwise make the output jump around a file.
func sortDiagnostics(diags hcl.Diagnostics, files []string) {
	fileIndex := make(map[string]int, len(files))
	for i, f := range files {
		fileIndex[f] = i
	}
	key := func(d *hcl.Diagnostic) (int, int) {
		if d.Subject == nil {
			return -1, 0
		}
		i, ok := fileIndex[d.Subject.Filename]
		if !ok {
			i = len(files)
		}
		return i, d.Subject.Start.Byte
	}
	sort.SliceStable(diags, func(a, b int) bool {
		fa, pa := key(diags[a])
		fb, pb := key(diags[b])
		if fa != fb {
			return fa < fb
		}
		return pa < pb
	})
}

// readFile reads, parses and records one file, then follows its includes
// depth first, so blocks keep declaration order: a file's own blocks, then
// each included file's in include order. from is the range of the include
// element that named the file, nil for the root.
func (l *loader) readFile(name string, from *hcl.Range) {
	if _, seen := l.cfg.Sources[name]; seen {
		return
	}
	src, err := l.opts.ReadFile(name)
	if err != nil {
		d := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Failed to read file",
			Detail:   fmt.Sprintf("Cannot read %q: %s.", name, err),
			Subject:  from,
		}
		if errors.Is(err, fs.ErrNotExist) {
			d.Summary = "Missing file"
			d.Detail = fmt.Sprintf("The file %q does not exist. Check the path; an include is relative to the file that contains it.", name)
		}
		l.diags = append(l.diags, d)
		l.cfg.Incomplete = true
		return
	}
	l.cfg.Files = append(l.cfg.Files, name)
	l.cfg.Sources[name] = src

	if d := CheckFileText(name, src); d != nil {
		// Parsing it could exhaust the stack (a fatal error, not a
		// panic) or print a binary's bytes to the terminal.
		l.diags = append(l.diags, d)
		l.cfg.Incomplete = true
		return
	}
	file, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || file == nil || file.Body == nil {
		// Decoding a file with syntax errors only adds confusing follow-on
		// errors; its other problems show once the syntax is fixed.
		l.cfg.Incomplete = true
		return
	}
	content, diags := file.Body.Content(fileSchema)
	l.diags = append(l.diags, diags...)
	l.files = append(l.files, loadedFile{name: name, content: content})

	if attr, ok := content.Attributes[attrInclude]; ok {
		for _, inc := range l.includePaths(name, attr) {
			l.readFile(inc.path, inc.rng)
		}
	}
}

// includeTarget is one file an include attribute names, with the range of
// the list element that named it.
type includeTarget struct {
	path string
	rng  *hcl.Range
}

// includePaths resolves an include attribute of the file named from into
// the files to read, in order: each element in turn, glob matches sorted.
func (l *loader) includePaths(from string, attr *hcl.Attribute) []includeTarget {
	type element struct {
		pattern string
		rng     hcl.Range
	}
	var elems []element
	if exprs, diags := hcl.ExprList(attr.Expr); !diags.HasErrors() {
		for _, expr := range exprs {
			val, diags := expr.Value(nil)
			l.diags = append(l.diags, diags...)
			if diags.HasErrors() {
				continue
			}
			s, ok := includeString(val)
			if !ok {
				l.diags = append(l.diags, invalidInclude(expr.Range()))
				continue
			}
			elems = append(elems, element{s, expr.Range()})
		}
	} else {
		val, diags := attr.Expr.Value(nil)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			return nil
		}
		list, err := convert.Convert(val, cty.List(cty.String))
		if err != nil || list.IsNull() || !list.IsWhollyKnown() {
			l.diags = append(l.diags, invalidInclude(attr.Expr.Range()))
			return nil
		}
		for _, v := range list.AsValueSlice() {
			s, ok := includeString(v)
			if !ok {
				l.diags = append(l.diags, invalidInclude(attr.Expr.Range()))
				continue
			}
			elems = append(elems, element{s, attr.Expr.Range()})
		}
	}

	dir := filepath.Dir(from)
	var targets []includeTarget
	for _, e := range elems {
		rng := e.rng
		pattern := e.pattern
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		if !hasGlobMeta(e.pattern) {
			targets = append(targets, includeTarget{filepath.Clean(pattern), &rng})
			continue
		}
		matches, err := l.opts.Glob(pattern)
		if err != nil {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid include pattern",
				Detail:   fmt.Sprintf("The pattern %q cannot be used: %s. Use a path or a glob such as \"inventory/*.hcl\".", e.pattern, err),
				Subject:  &rng,
			})
			continue
		}
		if len(matches) == 0 {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Include matches no files",
				Detail:   fmt.Sprintf("The pattern %q (looked up as %q, relative to the including file) matches no files. Fix the pattern or remove it from include.", e.pattern, pattern),
				Subject:  &rng,
			})
			continue
		}
		sort.Strings(matches)
		for _, m := range matches {
			targets = append(targets, includeTarget{filepath.Clean(m), &rng})
		}
	}
	return targets
}

func includeString(v cty.Value) (string, bool) {
	v, err := convert.Convert(v, cty.String)
	if err != nil || v.IsNull() || !v.IsKnown() || v.AsString() == "" {
		return "", false
	}
	return v.AsString(), true
}

func invalidInclude(rng hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  `Invalid value for "include"`,
		Detail:   `The "include" attribute must be a list of non-empty file paths or globs, such as ["inventory/*.hcl"].`,
		Subject:  rng.Ptr(),
	}
}

// hasGlobMeta reports whether p uses any filepath.Match syntax; a plain
// path that does not exist is then reported as missing rather than as a
// pattern that matches nothing.
func hasGlobMeta(p string) bool {
	return strings.ContainsAny(p, `*?[\`)
}

// decode turns the loaded files into the Config: variables of every file
// first, since service, plan and defaults attributes read var.*.
func (l *loader) decode() {
	seenVars := map[string]*Variable{}
	for _, f := range l.files {
		for _, block := range f.content.Blocks {
			if block.Type != blockVariable {
				continue
			}
			v, diags := decodeVariableBlock(block)
			l.diags = append(l.diags, diags...)
			if v == nil {
				continue
			}
			if prev, dup := seenVars[v.Name]; dup {
				l.diags = append(l.diags, duplicate("variable", v.Name, prev.DeclRange, block.LabelRanges[0]))
				continue
			}
			seenVars[v.Name] = v
			l.cfg.Variables = append(l.cfg.Variables, v)
		}
	}
	values, diags := variableValues(l.cfg.Variables, l.opts.Vars)
	l.diags = append(l.diags, diags...)
	l.cfg.VarValues = values

	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": values},
		Functions: Functions(),
	}
	var defaultsRange *hcl.Range
	seenPipelines := map[string]*Pipeline{}
	seenServices := map[string]*Service{}
	seenPlans := map[string]*Plan{}
	seenNotify := map[string]*Notify{}
	seenHosts := map[string]*Host{}
	for _, f := range l.files {
		for _, block := range f.content.Blocks {
			switch block.Type {
			case blockDefaults:
				d, diags := decodeDefaultsBlock(block, ctx)
				l.diags = append(l.diags, diags...)
				if defaultsRange != nil {
					l.diags = append(l.diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Duplicate defaults block",
						Detail:   fmt.Sprintf("A defaults block was already defined at %s. Only one defaults block is allowed across all included files; merge the two.", defaultsRange),
						Subject:  block.DefRange.Ptr(),
					})
					continue
				}
				defaultsRange = block.DefRange.Ptr()
				l.cfg.Defaults = *d
			case blockPipeline:
				p, diags := decodePipelineBlock(block)
				l.diags = append(l.diags, diags...)
				if prev, dup := seenPipelines[p.Name]; dup {
					l.diags = append(l.diags, duplicate("pipeline", p.Name, prev.NameRange, p.NameRange))
					continue
				}
				seenPipelines[p.Name] = p
				l.cfg.Pipelines = append(l.cfg.Pipelines, p)
			case blockService:
				s, diags := decodeServiceBlock(block, ctx)
				l.diags = append(l.diags, diags...)
				if prev, dup := seenServices[s.Name]; dup {
					l.diags = append(l.diags, duplicate("service", s.Name, prev.NameRange, s.NameRange))
					continue
				}
				seenServices[s.Name] = s
				l.cfg.Services = append(l.cfg.Services, s)
			case blockPlan:
				p, diags := decodePlanBlock(block, ctx)
				l.diags = append(l.diags, diags...)
				if prev, dup := seenPlans[p.Name]; dup {
					l.diags = append(l.diags, duplicate("plan", p.Name, prev.NameRange, p.NameRange))
					continue
				}
				seenPlans[p.Name] = p
				l.cfg.Plans = append(l.cfg.Plans, p)
			case blockNotify:
				n, diags := decodeNotifyBlock(block, ctx)
				l.diags = append(l.diags, diags...)
				if n == nil {
					continue
				}
				if prev, dup := seenNotify[n.Ref()]; dup {
					l.diags = append(l.diags, duplicate("notification", n.Kind+" "+n.Name, prev.NameRange, n.NameRange))
					continue
				}
				seenNotify[n.Ref()] = n
				l.cfg.Notifications = append(l.cfg.Notifications, n)
			case blockHost:
				h, diags := decodeHostBlock(block, ctx)
				l.diags = append(l.diags, diags...)
				if prev, dup := seenHosts[h.Name]; dup {
					l.diags = append(l.diags, duplicate("host", h.Name, prev.NameRange, h.NameRange))
					continue
				}
				seenHosts[h.Name] = h
				l.cfg.Hosts = append(l.cfg.Hosts, h)
			}
		}
	}
}

// duplicate reports a second block of kind named name at rng; prev is the
// first one's range.
func duplicate(kind, name string, prev, rng hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + kind,
		Detail: fmt.Sprintf("A %s named %q was already defined at %s. %s names must be unique across all included files; rename or remove one of them.",
			kind, name, prev, strings.ToUpper(kind[:1])+kind[1:]),
		Subject: rng.Ptr(),
	}
}

// DiagnosticFiles returns the loaded sources in the form
// hcl.NewDiagnosticTextWriter wants, so the CLI can print source lines.
func (c *Config) DiagnosticFiles() map[string]*hcl.File {
	files := map[string]*hcl.File{}
	if c == nil {
		return files
	}
	for name, src := range c.Sources {
		files[name] = &hcl.File{Bytes: src}
	}
	return files
}

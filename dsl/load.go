package dsl

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
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

// Load reads the root plan file at path, follows its includes (relative to
// the including file, globs allowed, each file read once), and decodes
// everything into a Config. It returns every diagnostic found; the Config is
// non-nil whenever parsing got far enough to be useful (it may be partial
// when diags.HasErrors()).
func Load(path string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	panic("dsl.Load: not implemented")
}

// Functions returns the functions available in plan expressions: go-cty's
// standard library (upper, lower, format, join, split, replace, concat,
// merge, lookup, coalesce, length, contains, ...).
func Functions() map[string]function.Function {
	panic("dsl.Functions: not implemented")
}

// EvalContext returns the context step attributes are evaluated in:
// var.* (c.VarValues), run.* (the given object of run flags), service.*
// (the given service object, see ServiceValue), and Functions().
func (c *Config) EvalContext(run, service cty.Value) *hcl.EvalContext {
	panic("dsl.EvalContext: not implemented")
}

// ServiceValue is the object bound to `service` when a pipeline is applied
// to s: name, unit, type, pipeline, working_dir, tags (list of string),
// depends_on (list of string), meta (map of string).
func ServiceValue(s *Service) cty.Value {
	panic("dsl.ServiceValue: not implemented")
}

package dsl

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Roots of the expression language.
const (
	rootVar     = "var"
	rootRun     = "run"
	rootService = "service"
)

// Functions returns the functions available in plan expressions: go-cty's
// standard library (upper, lower, format, join, split, replace, concat,
// merge, lookup, coalesce, length, contains, ...).
//
// The names follow Terraform's, so operators can carry their habits over.
// A new map is built on every call: callers may add to it freely.
func Functions() map[string]function.Function {
	return map[string]function.Function{
		"abs":             stdlib.AbsoluteFunc,
		"ceil":            stdlib.CeilFunc,
		"chomp":           stdlib.ChompFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"concat":          stdlib.ConcatFunc,
		"contains":        stdlib.ContainsFunc,
		"csvdecode":       stdlib.CSVDecodeFunc,
		"distinct":        stdlib.DistinctFunc,
		"element":         stdlib.ElementFunc,
		"flatten":         stdlib.FlattenFunc,
		"floor":           stdlib.FloorFunc,
		"format":          stdlib.FormatFunc,
		"formatdate":      stdlib.FormatDateFunc,
		"formatlist":      stdlib.FormatListFunc,
		"indent":          stdlib.IndentFunc,
		"join":            stdlib.JoinFunc,
		"jsondecode":      stdlib.JSONDecodeFunc,
		"jsonencode":      stdlib.JSONEncodeFunc,
		"keys":            stdlib.KeysFunc,
		"length":          stdlib.LengthFunc,
		"log":             stdlib.LogFunc,
		"lookup":          stdlib.LookupFunc,
		"lower":           stdlib.LowerFunc,
		"max":             stdlib.MaxFunc,
		"merge":           stdlib.MergeFunc,
		"min":             stdlib.MinFunc,
		"parseint":        stdlib.ParseIntFunc,
		"pow":             stdlib.PowFunc,
		"range":           stdlib.RangeFunc,
		"regex":           stdlib.RegexFunc,
		"regexall":        stdlib.RegexAllFunc,
		"regex_replace":   stdlib.RegexReplaceFunc,
		"replace":         stdlib.ReplaceFunc,
		"reverse":         stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setproduct":      stdlib.SetProductFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		"setunion":        stdlib.SetUnionFunc,
		"signum":          stdlib.SignumFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"split":           stdlib.SplitFunc,
		"strrev":          stdlib.ReverseFunc,
		"substr":          stdlib.SubstrFunc,
		"timeadd":         stdlib.TimeAddFunc,
		"title":           stdlib.TitleFunc,
		"tobool":          stdlib.MakeToFunc(cty.Bool),
		"tolist":          stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":           stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":        stdlib.MakeToFunc(cty.Number),
		"toset":           stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":        stdlib.MakeToFunc(cty.String),
		"trim":            stdlib.TrimFunc,
		"trimprefix":      stdlib.TrimPrefixFunc,
		"trimspace":       stdlib.TrimSpaceFunc,
		"trimsuffix":      stdlib.TrimSuffixFunc,
		"upper":           stdlib.UpperFunc,
		"values":          stdlib.ValuesFunc,
		"zipmap":          stdlib.ZipmapFunc,
	}
}

// EvalContext returns the context step attributes are evaluated in:
// var.* (c.VarValues), run.* (the given object of run flags), service.*
// (the given service object, see ServiceValue), and Functions().
//
// A cty.NilVal run or service becomes an empty object, so that a reference
// to it is an "Unsupported attribute" diagnostic rather than a panic.
func (c *Config) EvalContext(run, service cty.Value) *hcl.EvalContext {
	vars := cty.EmptyObjectVal
	if c != nil && c.VarValues != cty.NilVal {
		vars = c.VarValues
	}
	if run == cty.NilVal {
		run = cty.EmptyObjectVal
	}
	if service == cty.NilVal {
		service = cty.EmptyObjectVal
	}
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{
			rootVar:     vars,
			rootRun:     run,
			rootService: service,
		},
		Functions: Functions(),
	}
}

// serviceValueType is the type of ServiceValue's result.
var serviceValueType = cty.Object(map[string]cty.Type{
	"name":        cty.String,
	"unit":        cty.String,
	"type":        cty.String,
	"pipeline":    cty.String,
	"working_dir": cty.String,
	"tags":        cty.List(cty.String),
	"depends_on":  cty.List(cty.String),
	"meta":        cty.Map(cty.String),
})

// ServiceValue is the object bound to `service` when a pipeline is applied
// to s: name, unit, type, pipeline, working_dir, tags (list of string),
// depends_on (list of string), meta (map of string). A nil s gives a null
// object of the same type.
func ServiceValue(s *Service) cty.Value {
	if s == nil {
		return cty.NullVal(serviceValueType)
	}
	deps := make([]string, len(s.DependsOn))
	for i, d := range s.DependsOn {
		deps[i] = d.Name
	}
	meta := cty.MapValEmpty(cty.String)
	if len(s.Meta) > 0 {
		m := make(map[string]cty.Value, len(s.Meta))
		for k, v := range s.Meta {
			m[k] = cty.StringVal(v)
		}
		meta = cty.MapVal(m)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"name":        cty.StringVal(s.Name),
		"unit":        cty.StringVal(s.Unit),
		"type":        cty.StringVal(s.Type),
		"pipeline":    cty.StringVal(s.Pipeline),
		"working_dir": cty.StringVal(s.WorkingDir),
		"tags":        stringList(s.Tags),
		"depends_on":  stringList(deps),
		"meta":        meta,
	})
}

func stringList(ss []string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vals := make([]cty.Value, len(ss))
	for i, s := range ss {
		vals[i] = cty.StringVal(s)
	}
	return cty.ListVal(vals)
}

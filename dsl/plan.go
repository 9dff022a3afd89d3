package dsl

import (
	"fmt"
	"math"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

const (
	blockPlan  = "plan"
	blockBatch = "batch"
)

var planSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "select"},
		{Name: "max_parallel"},
		{Name: "on_failure"},
		{Name: "max_failures"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: blockBatch},
	},
}

var batchSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "types"},
		{Name: "tags"},
		{Name: "max_unavailable"},
	},
}

// Keys of a plan's select object.
const (
	selectNames = "names"
	selectTypes = "types"
	selectTags  = "tags"
)

// decodePlanBlock decodes a plan block, evaluating its attributes in ctx.
func decodePlanBlock(block *hcl.Block, ctx *hcl.EvalContext) (*Plan, hcl.Diagnostics) {
	p := &Plan{
		Name:      block.Labels[0],
		OnFailure: OnFailureAbort,
		NameRange: block.LabelRanges[0],
		DeclRange: block.DefRange,
	}
	content, diags := block.Body.Content(planSchema)
	diags = append(diags, emptyLabel("plan", p.Name, p.NameRange)...)

	if attr, ok := content.Attributes["select"]; ok {
		sel, more := decodeSelection(attr, ctx)
		diags = append(diags, more...)
		p.Select = sel
	}
	if attr, ok := content.Attributes["max_parallel"]; ok {
		var more hcl.Diagnostics
		p.MaxParallel, p.MaxParallelSet, more = attrInt(attr, ctx, 0, math.MaxInt32)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["on_failure"]; ok {
		s, ok, more := attrString(attr, ctx)
		diags = append(diags, more...)
		switch {
		case !ok:
		case s == OnFailureAbort || s == OnFailureContinue:
			p.OnFailure = s
		default:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid on_failure policy",
				Detail: fmt.Sprintf("%q is not an on_failure policy. Use %q to stop the run at the first failure, or %q to go on with the services that do not depend on it.",
					s, OnFailureAbort, OnFailureContinue),
				Subject: attr.Expr.Range().Ptr(),
			})
		}
	}
	if attr, ok := content.Attributes["max_failures"]; ok {
		var more hcl.Diagnostics
		p.MaxFailures, _, more = attrInt(attr, ctx, 0, math.MaxInt32)
		diags = append(diags, more...)
	}
	for _, bb := range content.Blocks {
		b, more := decodeBatchBlock(bb, ctx)
		diags = append(diags, more...)
		p.Batches = append(p.Batches, b)
	}
	return p, diags
}

// decodeSelection decodes `select = { names = [...], types = [...], tags = [...] }`.
// A literal object is read key by key, so a bad key or value is reported at
// its own range.
func decodeSelection(attr *hcl.Attribute, ctx *hcl.EvalContext) (Selection, hcl.Diagnostics) {
	sel := Selection{Range: attr.Expr.Range()}
	var diags hcl.Diagnostics
	set := func(key string, rng hcl.Range, val cty.Value) {
		list, err := convert.Convert(val, cty.List(cty.String))
		if err == nil && !list.IsWhollyKnown() {
			return
		}
		var out []string
		if err == nil && !list.IsNull() {
			for _, v := range list.AsValueSlice() {
				if v.IsNull() {
					err = fmt.Errorf("an element is null")
					break
				}
				out = append(out, v.AsString())
			}
		}
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  `Invalid value for "select"`,
				Detail:   fmt.Sprintf("The %q selection must be a list of strings: %s.", key, err),
				Subject:  rng.Ptr(),
			})
			return
		}
		switch key {
		case selectNames:
			sel.Names = out
		case selectTypes:
			sel.Types = out
		case selectTags:
			sel.Tags = out
		default:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported selection key",
				Detail:   fmt.Sprintf("%q cannot be selected on. A plan selects services by %q, %q or %q.", key, selectNames, selectTypes, selectTags),
				Subject:  rng.Ptr(),
			})
		}
	}

	if pairs, mapDiags := hcl.ExprMap(attr.Expr); !mapDiags.HasErrors() {
		for _, pair := range pairs {
			key := hcl.ExprAsKeyword(pair.Key)
			if key == "" {
				kv, ok, more := evalExpr(pair.Key, ctx)
				diags = append(diags, more...)
				if !ok {
					continue
				}
				ks, err := convert.Convert(kv, cty.String)
				if err != nil {
					diags = append(diags, invalidValue(attr, "an object with keys names, types and tags", err))
					continue
				}
				key = ks.AsString()
			}
			if !isSelectKey(key) {
				set(key, pair.Key.Range(), cty.ListValEmpty(cty.String))
				continue
			}
			val, ok, more := evalExpr(pair.Value, ctx)
			diags = append(diags, more...)
			if ok {
				set(key, pair.Value.Range(), val)
			}
		}
		return sel, diags
	}

	val, ok, more := evalAttr(attr, ctx)
	diags = append(diags, more...)
	if !ok {
		return sel, diags
	}
	if !val.Type().IsObjectType() && !val.Type().IsMapType() {
		return sel, append(diags, invalidValue(attr, "an object with keys names, types and tags", nil))
	}
	m := val.AsValueMap()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set(k, attr.Expr.Range(), m[k])
	}
	return sel, diags
}

func isSelectKey(key string) bool {
	return key == selectNames || key == selectTypes || key == selectTags
}

func decodeBatchBlock(block *hcl.Block, ctx *hcl.EvalContext) (*Batch, hcl.Diagnostics) {
	b := &Batch{MaxUnavailable: 1, DeclRange: block.DefRange}
	content, diags := block.Body.Content(batchSchema)
	if attr, ok := content.Attributes["types"]; ok {
		var more hcl.Diagnostics
		b.Types, _, more = attrStringList(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["tags"]; ok {
		var more hcl.Diagnostics
		b.Tags, _, more = attrStringList(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["max_unavailable"]; ok {
		n, ok, more := attrInt(attr, ctx, 1, math.MaxInt32)
		diags = append(diags, more...)
		if ok {
			b.MaxUnavailable = n
		}
	}
	return b, diags
}

package dsl

import (
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Helpers that evaluate one attribute of a service, plan, defaults or health
// block into a Go value. Each returns ok=false when the attribute gives no
// usable value: it is null (as if unset), unknown (it uses a variable that
// has no value, already reported), or it is invalid (reported in diags).

// evalAttr evaluates attr in ctx, rejecting run.* and service.*: they have
// values only while a pipeline is applied to a service.
func evalAttr(attr *hcl.Attribute, ctx *hcl.EvalContext) (cty.Value, bool, hcl.Diagnostics) {
	return evalExpr(attr.Expr, ctx)
}

func evalExpr(expr hcl.Expression, ctx *hcl.EvalContext) (cty.Value, bool, hcl.Diagnostics) {
	diags := stepOnlyReferences(expr, ctx)
	if diags.HasErrors() {
		return cty.NilVal, false, diags
	}
	val, more := expr.Value(ctx)
	diags = append(diags, more...)
	if more.HasErrors() || val == cty.NilVal || !val.IsWhollyKnown() || val.IsNull() {
		return cty.NilVal, false, diags
	}
	val, _ = val.UnmarkDeep()
	return val, true, diags
}

// stepOnlyReferences reports every run.* and service.* reference in expr,
// except service.* where ctx binds it (an instance's health check or
// canary analysis, checked with a sample instance).
func stepOnlyReferences(expr hcl.Expression, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	serviceBound := false
	if ctx != nil {
		_, serviceBound = ctx.Variables[rootService]
	}
	for _, t := range expr.Variables() {
		root := t.RootName()
		if root != rootRun && root != rootService {
			continue
		}
		if root == rootService && serviceBound {
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference",
			Detail: fmt.Sprintf("%s.* exists only in step attributes, where a pipeline is applied to one service in one run. "+
				"Service, plan and defaults attributes may use var.* and functions; move this expression into a step, or use a variable.", root),
			Subject: t.SourceRange().Ptr(),
		})
	}
	return diags
}

func invalidValue(attr *hcl.Attribute, want string, err error) *hcl.Diagnostic {
	detail := fmt.Sprintf("The %q argument must be %s.", attr.Name, want)
	if err != nil {
		detail = fmt.Sprintf("The %q argument must be %s: %s.", attr.Name, want, err)
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid value for %q", attr.Name),
		Detail:   detail,
		Subject:  attr.Expr.Range().Ptr(),
	}
}

func attrString(attr *hcl.Attribute, ctx *hcl.EvalContext) (string, bool, hcl.Diagnostics) {
	val, ok, diags := evalAttr(attr, ctx)
	if !ok {
		return "", false, diags
	}
	return valString(attr, val, diags)
}

func valString(attr *hcl.Attribute, val cty.Value, diags hcl.Diagnostics) (string, bool, hcl.Diagnostics) {
	s, err := convert.Convert(val, cty.String)
	if err != nil {
		return "", false, append(diags, invalidValue(attr, "a string", err))
	}
	return s.AsString(), true, diags
}

// attrInt decodes a whole number in [min, max].
func attrInt(attr *hcl.Attribute, ctx *hcl.EvalContext, min, max int) (int, bool, hcl.Diagnostics) {
	val, ok, diags := evalAttr(attr, ctx)
	if !ok {
		return 0, false, diags
	}
	want := fmt.Sprintf("a whole number of at least %d", min)
	if max < math.MaxInt32 {
		want = fmt.Sprintf("a whole number from %d to %d", min, max)
	}
	n, err := convert.Convert(val, cty.Number)
	if err != nil {
		return 0, false, append(diags, invalidValue(attr, want, err))
	}
	bf := n.AsBigFloat()
	if !bf.IsInt() {
		return 0, false, append(diags, invalidValue(attr, want, fmt.Errorf("%s is not a whole number", bf.Text('g', -1))))
	}
	i, acc := bf.Int64()
	if acc != big.Exact || i < int64(min) || i > int64(max) {
		return 0, false, append(diags, invalidValue(attr, want, fmt.Errorf("got %s", bf.Text('g', -1))))
	}
	return int(i), true, diags
}

func attrStringList(attr *hcl.Attribute, ctx *hcl.EvalContext) ([]string, bool, hcl.Diagnostics) {
	val, ok, diags := evalAttr(attr, ctx)
	if !ok {
		return nil, false, diags
	}
	list, err := convert.Convert(val, cty.List(cty.String))
	if err != nil {
		return nil, false, append(diags, invalidValue(attr, "a list of strings", err))
	}
	out := make([]string, 0, list.LengthInt())
	for _, v := range list.AsValueSlice() {
		if v.IsNull() {
			return nil, false, append(diags, invalidValue(attr, "a list of strings", fmt.Errorf("an element is null")))
		}
		out = append(out, v.AsString())
	}
	return out, true, diags
}

func attrStringMap(attr *hcl.Attribute, ctx *hcl.EvalContext) (map[string]string, bool, hcl.Diagnostics) {
	val, ok, diags := evalAttr(attr, ctx)
	if !ok {
		return nil, false, diags
	}
	m, err := convert.Convert(val, cty.Map(cty.String))
	if err != nil {
		return nil, false, append(diags, invalidValue(attr, "a map of strings", err))
	}
	out := make(map[string]string, m.LengthInt())
	for k, v := range m.AsValueMap() {
		if v.IsNull() {
			return nil, false, append(diags, invalidValue(attr, "a map of strings", fmt.Errorf("the value of %q is null", k)))
		}
		out[k] = v.AsString()
	}
	return out, true, diags
}

// attrDuration decodes a duration under ParseDuration's rule.
func attrDuration(attr *hcl.Attribute, ctx *hcl.EvalContext) (time.Duration, bool, hcl.Diagnostics) {
	s, ok, diags := attrString(attr, ctx)
	if !ok {
		return 0, false, diags
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, false, append(diags, InvalidDuration(attr.Name, err, attr.Expr.Range()))
	}
	return d, true, diags
}

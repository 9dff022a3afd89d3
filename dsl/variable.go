package dsl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

const blockVariable = "variable"

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "default"},
		{Name: "description"},
	},
}

// decodeVariableBlock decodes a variable block. Its default may use
// functions but no variables: variables are what is being defined.
func decodeVariableBlock(block *hcl.Block) (*Variable, hcl.Diagnostics) {
	v := &Variable{
		Name:      block.Labels[0],
		Default:   cty.NilVal,
		DeclRange: block.DefRange,
	}
	content, diags := block.Body.Content(variableSchema)
	if !hclsyntax.ValidIdentifier(v.Name) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid variable name",
			Detail:   fmt.Sprintf("The name %q cannot be used as var.%s. A variable name starts with a letter and holds only letters, digits, underscores and dashes.", v.Name, v.Name),
			Subject:  block.LabelRanges[0].Ptr(),
		})
	}
	ctx := &hcl.EvalContext{Functions: Functions()}
	if attr, ok := content.Attributes["default"]; ok {
		val, more := attr.Expr.Value(ctx)
		diags = append(diags, more...)
		if !more.HasErrors() && val.IsWhollyKnown() {
			val, _ = val.UnmarkDeep()
			v.Default = val
		}
	}
	if attr, ok := content.Attributes["description"]; ok {
		if s, ok, more := attrString(attr, ctx); ok {
			v.Description = s
		} else {
			diags = append(diags, more...)
		}
	}
	return v, diags
}

// variableValues builds the object bound to var: each variable's --var
// value converted to its default's type, else its default. A variable
// without either is reported and left unknown, so expressions that use it
// are skipped instead of reported again.
func variableValues(vars []*Variable, given map[string]string) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	declared := map[string]*Variable{}
	names := make([]string, 0, len(vars))
	for _, v := range vars {
		declared[v.Name] = v
		names = append(names, v.Name)
	}

	givenNames := make([]string, 0, len(given))
	for name := range given {
		givenNames = append(givenNames, name)
	}
	sort.Strings(givenNames)
	for _, name := range givenNames {
		if _, ok := declared[name]; ok {
			continue
		}
		detail := fmt.Sprintf("`--var %s=...` sets a variable that no plan file declares.", name)
		if s := Suggest(name, names); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		detail += fmt.Sprintf(" Declare it with a variable %q block, or remove the flag.", name)
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Value for undeclared variable",
			Detail:   detail,
		})
	}

	if len(vars) == 0 {
		return cty.EmptyObjectVal, diags
	}
	values := make(map[string]cty.Value, len(vars))
	for _, v := range vars {
		raw, set := given[v.Name]
		switch {
		case set:
			val, d := variableFromFlag(v, raw)
			diags = append(diags, d...)
			values[v.Name] = val
		case v.Default != cty.NilVal:
			values[v.Name] = v.Default
		default:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing value for variable",
				Detail:   fmt.Sprintf("The variable %q has no default and no value was given. Pass one with --var %s=VALUE, or give the variable a default.", v.Name, v.Name),
				Subject:  v.DeclRange.Ptr(),
			})
			values[v.Name] = cty.DynamicVal
		}
	}
	return cty.ObjectVal(values), diags
}

// variableFromFlag converts a --var string to the type of v's default:
// a primitive by cty conversion, a collection or object by reading the
// string as an HCL expression (--var 'zones=["a","b"]').
func variableFromFlag(v *Variable, raw string) (cty.Value, hcl.Diagnostics) {
	ty := cty.String
	if v.Default != cty.NilVal && !v.Default.IsNull() {
		ty = v.Default.Type()
	}
	invalid := func(reason string) hcl.Diagnostics {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail: fmt.Sprintf("`--var %s=%s` cannot be used: variable %q takes a %s, like its default, and %s. Pass a %s, for example %s.",
				v.Name, shorten(raw, 80), v.Name, ty.FriendlyName(), reason, ty.FriendlyName(), example(v.Name, ty)),
		}}
	}
	if ty.IsPrimitiveType() {
		val, err := convert.Convert(cty.StringVal(raw), ty)
		if err != nil {
			return cty.DynamicVal, invalid(fmt.Sprintf("%q is not one", raw))
		}
		return val, nil
	}
	if d := checkExprText("--var "+v.Name, []byte(raw)); d != nil {
		return cty.DynamicVal, invalid(strings.ToLower(d.Summary[:1]) + d.Summary[1:] + " in the value")
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), "--var "+v.Name, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.DynamicVal, invalid("the value is not a valid expression")
	}
	val, diags := expr.Value(&hcl.EvalContext{Functions: Functions()})
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return cty.DynamicVal, invalid("the value cannot be evaluated")
	}
	return val, nil
}

func example(name string, ty cty.Type) string {
	switch {
	case ty == cty.Number:
		return fmt.Sprintf("--var %s=3", name)
	case ty == cty.Bool:
		return fmt.Sprintf("--var %s=true", name)
	case ty == cty.String:
		return fmt.Sprintf("--var %s=text", name)
	case ty.IsMapType() || ty.IsObjectType():
		return fmt.Sprintf(`--var '%s={key="value"}'`, name)
	default:
		return fmt.Sprintf(`--var '%s=["a","b"]'`, name)
	}
}

// shorten cuts s to at most n runes, marking the cut, so that a huge or
// hostile value does not flood a diagnostic.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + fmt.Sprintf("… (%d more characters)", len(r)-n)
}

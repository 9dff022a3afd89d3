package dsl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// decodeColors reads `colors`: the two instances of a template unit that
// a blue-green service runs as, one live and one idle ("blue", "green").
// Unlike `instances`, colors are never restarted one after the other
// through the pipeline: a blue_green step deploys to the idle one and
// switches traffic to it.
func decodeColors(s *Service, attr *hcl.Attribute, ctx *hcl.EvalContext) hcl.Diagnostics {
	s.ColorsRange = attr.Expr.Range()
	// Set even when the value is refused: a template unit with broken
	// colors is not also "without instances".
	s.ColorsSet = true
	val, ok, diags := evalAttr(attr, ctx)
	if !ok {
		return diags
	}
	bad := func(detail string) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid colors",
			Detail:   detail,
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	list, err := convert.Convert(val, cty.List(cty.String))
	if err != nil {
		return append(diags, invalidValue(attr, "a list of two color names", err))
	}
	var names []string
	for _, v := range list.AsValueSlice() {
		if v.IsNull() {
			return bad("An element of colors is null. Name the two colors, such as [\"blue\", \"green\"].")
		}
		names = append(names, v.AsString())
	}
	if len(names) != 2 {
		return bad(fmt.Sprintf("A blue-green service runs as exactly two colors, one serving while the other takes the release, but colors has %d. Name two, such as [\"blue\", \"green\"].", len(names)))
	}
	for _, n := range names {
		if !instanceChars.MatchString(n) {
			return bad(fmt.Sprintf("The color %q holds characters systemd does not allow in an instance name. Use only letters, digits and \":_.\\-\".", n))
		}
	}
	if names[0] == names[1] {
		return bad(fmt.Sprintf("Both colors are %q: the idle color would be the live one. Name two different colors, such as [\"blue\", \"green\"].", names[0]))
	}
	s.Colors = names
	return diags
}

// checkColors refuses colors on a unit that is not a template, and colors
// together with instances (a service either rolls its instances or
// switches between two colors).
func checkColors(s *Service) hcl.Diagnostics {
	if len(s.Colors) == 0 || s.Unit == "" {
		return nil
	}
	switch {
	case !IsTemplateUnit(s.Unit):
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Colors of a unit that is not a template",
			Detail: fmt.Sprintf("Service %q has colors, but its unit %q is not a systemd template unit. The colors run as instances of a template such as %q (%q, %q).",
				s.Name, s.Unit, templateOf(s.Unit), InstanceUnit(templateOf(s.Unit), s.Colors[0]), InstanceUnit(templateOf(s.Unit), s.Colors[1])),
			Subject: s.ColorsRange.Ptr(),
		}}
	case s.InstancesSet:
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Colors and instances",
			Detail:   fmt.Sprintf("Service %q has both colors and instances. Instances restart one after the other; colors take turns serving (blue-green). Keep one of them.", s.Name),
			Subject:  s.ColorsRange.Ptr(),
		}}
	}
	return nil
}

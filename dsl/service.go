package dsl

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

const blockService = "service"

var serviceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "unit", Required: true},
		{Name: "type"},
		{Name: "pipeline"},
		{Name: "depends_on"},
		{Name: "working_dir"},
		{Name: "tags"},
		{Name: "meta"},
		{Name: "hosts"},
		{Name: "host_tags"},
		{Name: "max_unavailable"},
		{Name: "serial"},
		{Name: "instances"},
		{Name: "colors"},
		{Name: "port"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: blockHealth, LabelNames: []string{"kind"}},
		{Type: blockCanary},
	},
}

// decodeServiceBlock decodes a service block, evaluating its attributes in
// ctx (var.* and functions).
func decodeServiceBlock(block *hcl.Block, ctx *hcl.EvalContext) (*Service, hcl.Diagnostics) {
	s := &Service{
		Name:      block.Labels[0],
		NameRange: block.LabelRanges[0],
		DeclRange: block.DefRange,
	}
	content, diags := block.Body.Content(serviceSchema)
	diags = append(diags, emptyLabel("service", s.Name, s.NameRange)...)

	if attr, ok := content.Attributes["unit"]; ok {
		s.UnitRange = attr.Expr.Range()
		unit, ok, more := attrString(attr, ctx)
		diags = append(diags, more...)
		if ok {
			s.Unit = unit
			diags = append(diags, validateUnitName(unit, attr.Expr.Range())...)
		} else if !more.HasErrors() && !isUnknown(attr, ctx) {
			diags = append(diags, validateUnitName("", attr.Expr.Range())...)
		}
	}
	if attr, ok := content.Attributes["type"]; ok {
		s.TypeRange = attr.Expr.Range()
		var more hcl.Diagnostics
		s.Type, _, more = attrString(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["pipeline"]; ok {
		s.PipelineRange = attr.Expr.Range()
		var more hcl.Diagnostics
		s.Pipeline, s.PipelineSet, more = attrString(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["depends_on"]; ok {
		deps, more := decodeDependsOn(attr, ctx)
		diags = append(diags, more...)
		s.DependsOn = deps
	}
	if attr, ok := content.Attributes["working_dir"]; ok {
		var more hcl.Diagnostics
		s.WorkingDir, _, more = attrString(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["tags"]; ok {
		var more hcl.Diagnostics
		s.Tags, _, more = attrStringList(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["meta"]; ok {
		var more hcl.Diagnostics
		s.Meta, _, more = attrStringMap(attr, ctx)
		diags = append(diags, more...)
	}

	if attr, ok := content.Attributes["hosts"]; ok {
		hosts, more := decodeDependsOn(attr, ctx)
		diags = append(diags, more...)
		s.Hosts = hosts
	}
	if attr, ok := content.Attributes["host_tags"]; ok {
		var more hcl.Diagnostics
		s.HostTagsRange = attr.Expr.Range()
		s.HostTags, _, more = attrStringList(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["max_unavailable"]; ok {
		val, ok, more := evalAttr(attr, ctx)
		diags = append(diags, more...)
		if ok {
			a, err := amountValue(val)
			if err == nil && a.N < 1 {
				err = fmt.Errorf("it must be at least 1")
			}
			if err != nil {
				diags = append(diags, invalidAmount(attr, err))
			} else {
				s.MaxUnavailable, s.MaxUnavailableSet = a, true
			}
		}
	}
	if attr, ok := content.Attributes["serial"]; ok {
		s.SerialRange = attr.Expr.Range()
		val, ok, more := evalAttr(attr, ctx)
		diags = append(diags, more...)
		if ok {
			serial, err := serialValue(val)
			if err != nil {
				diags = append(diags, invalidAmount(attr, err))
			} else {
				s.Serial = serial
			}
		}
	}

	if attr, ok := content.Attributes["instances"]; ok {
		diags = append(diags, decodeInstances(s, attr, ctx)...)
	}
	if attr, ok := content.Attributes["colors"]; ok {
		diags = append(diags, decodeColors(s, attr, ctx)...)
	}
	diags = append(diags, checkTemplate(s)...)
	diags = append(diags, checkColors(s)...)
	if attr, ok := content.Attributes["port"]; ok {
		s.PortExpr = attr.Expr
		// Checked for every instance here; the planner evaluates it again
		// for each.
		insts := s.Instances
		if len(insts) == 0 {
			insts = []string{""}
		}
		for i, name := range insts {
			_, more := s.InstancePort(ctx, Instance{Name: name, Index: i})
			diags = append(diags, more...)
			if more.HasErrors() {
				s.PortExpr = nil
				break
			}
		}
	}

	for _, hb := range content.Blocks {
		if hb.Type == blockCanary {
			c, more := decodeCanaryBlock(hb, ctx, s)
			diags = append(diags, more...)
			if s.Canary != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate canary block",
					Detail:   fmt.Sprintf("Service %q already has a canary block at %s. A service has at most one canary; remove one of them.", s.Name, s.Canary.DeclRange),
					Subject:  hb.DefRange.Ptr(),
				})
				continue
			}
			s.Canary = c
			continue
		}
		h, more := decodeHealthBlock(hb, ctx, s)
		diags = append(diags, more...)
		if s.Health != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate health block",
				Detail: fmt.Sprintf("Service %q already has a health block at %s. A service has at most one health check; remove one of them.",
					s.Name, s.Health.DeclRange),
				Subject: hb.DefRange.Ptr(),
			})
			continue
		}
		if h != nil {
			s.Health = h
		}
	}
	return s, diags
}

// isUnknown reports whether attr evaluates to an unknown value, which
// means it uses a variable already reported as missing.
func isUnknown(attr *hcl.Attribute, ctx *hcl.EvalContext) bool {
	val, diags := attr.Expr.Value(ctx)
	return !diags.HasErrors() && !val.IsWhollyKnown()
}

// decodeDependsOn keeps the range of each element of a literal list, so
// that an unknown name or a cycle can point at the exact string; a computed
// list gives every entry the whole expression's range.
func decodeDependsOn(attr *hcl.Attribute, ctx *hcl.EvalContext) ([]Dependency, hcl.Diagnostics) {
	exprs, listDiags := hcl.ExprList(attr.Expr)
	if listDiags.HasErrors() {
		names, _, diags := attrStringList(attr, ctx)
		deps := make([]Dependency, len(names))
		for i, n := range names {
			deps[i] = Dependency{Name: n, Range: attr.Expr.Range()}
		}
		return deps, diags
	}
	var diags hcl.Diagnostics
	var deps []Dependency
	for _, expr := range exprs {
		val, ok, more := evalExpr(expr, ctx)
		diags = append(diags, more...)
		if !ok {
			continue
		}
		name, ok, more := valString(attr, val, nil)
		diags = append(diags, more...)
		if !ok {
			continue
		}
		deps = append(deps, Dependency{Name: name, Range: expr.Range()})
	}
	return deps, diags
}

// unitNameChars are the characters systemd allows in a unit name.
var unitNameChars = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+$`)

// unitSuffixes are the unit types a service entry may name.
var unitSuffixes = []string{
	".service", ".socket", ".target", ".timer", ".mount", ".path",
	".slice", ".scope", ".swap", ".device", ".automount",
}

// maxUnitNameLen is systemd's UNIT_NAME_MAX.
const maxUnitNameLen = 255

// validateUnitName reports a unit name systemd would reject, at rng.
func validateUnitName(unit string, rng hcl.Range) hcl.Diagnostics {
	bad := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid unit name",
			Detail:   detail,
			Subject:  rng.Ptr(),
		}}
	}
	if unit == "" {
		return bad(`The "unit" argument is empty. Name the systemd unit to restart, such as "api.service".`)
	}
	if len(unit) > maxUnitNameLen {
		return bad(fmt.Sprintf("The unit name %q is %d characters long; systemd allows at most %d.", unit, len(unit), maxUnitNameLen))
	}
	if !unitNameChars.MatchString(unit) {
		return bad(fmt.Sprintf("The unit name %q holds characters systemd does not allow. Use only letters, digits and \":_.\\@-\"; escape others with systemd-escape.", unit))
	}
	for _, suffix := range unitSuffixes {
		if strings.HasSuffix(unit, suffix) {
			if len(unit) == len(suffix) {
				return bad(fmt.Sprintf("The unit name %q has a type suffix but no name before it.", unit))
			}
			return nil
		}
	}
	return bad(fmt.Sprintf("The unit name %q has no unit type suffix. systemd needs the full name; did you mean %q?", unit, unit+".service"))
}

// amountValue reads a whole number or a percentage string ("25%").
func amountValue(v cty.Value) (Amount, error) {
	switch {
	case v.Type() == cty.Number:
		bf := v.AsBigFloat()
		n, acc := bf.Int64()
		if !bf.IsInt() || acc != 0 || n < 0 || n > 1<<20 {
			return Amount{}, fmt.Errorf("%s is not a whole number", bf.Text('g', -1))
		}
		return Amount{N: int(n)}, nil
	case v.Type() == cty.String:
		str := strings.TrimSpace(v.AsString())
		if num, ok := strings.CutSuffix(str, "%"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(num))
			if err != nil || n < 1 || n > 100 {
				return Amount{}, fmt.Errorf("%q is not a percentage from 1%% to 100%%", str)
			}
			return Amount{N: n, Percent: true}, nil
		}
		n, err := strconv.Atoi(str)
		if err != nil || n < 0 {
			return Amount{}, fmt.Errorf("%q is neither a whole number nor a percentage", str)
		}
		return Amount{N: n}, nil
	}
	return Amount{}, fmt.Errorf("a %s is neither a number nor a percentage", v.Type().FriendlyName())
}

// serialValue reads a list (or tuple) of amounts, or one amount.
func serialValue(v cty.Value) ([]Amount, error) {
	if !v.CanIterateElements() || v.Type().IsMapType() || v.Type().IsObjectType() {
		a, err := amountValue(v)
		if err == nil && a.N < 1 {
			err = fmt.Errorf("a batch must hold at least 1 instance")
		}
		return []Amount{a}, err
	}
	var out []Amount
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			return nil, fmt.Errorf("element %d is null", len(out))
		}
		a, err := amountValue(e)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", len(out), err)
		}
		if a.N < 1 {
			return nil, fmt.Errorf("element %d: a batch must hold at least 1 instance", len(out))
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the list is empty")
	}
	return out, nil
}

func invalidAmount(attr *hcl.Attribute, err error) *hcl.Diagnostic {
	example := `2 or "25%"`
	if attr.Name == "serial" {
		example = `[1, "25%", "100%"] (one instance first, then a quarter at a time, then the rest)`
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid value for %q", attr.Name),
		Detail:   fmt.Sprintf("The %q argument takes numbers of instances or percentages of them, such as %s: %s.", attr.Name, example, err),
		Subject:  attr.Expr.Range().Ptr(),
	}
}

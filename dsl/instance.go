package dsl

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// maxInstances bounds `instances = N`: a count beyond it is a typo, and
// every instance becomes a vertex of the plan.
const maxInstances = 1000

// instanceChars are the characters systemd allows in a template unit's
// instance name (unit_instance_is_valid: the unit name characters).
var instanceChars = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+$`)

// IsTemplateUnit reports whether unit is a systemd template ("api@.service").
func IsTemplateUnit(unit string) bool {
	at := strings.LastIndex(unit, "@")
	dot := strings.LastIndex(unit, ".")
	return at >= 0 && dot == at+1
}

// InstanceUnit is the unit of instance inst of the template unit
// ("api@.service", "2" → "api@2.service").
func InstanceUnit(template, inst string) string {
	at := strings.LastIndex(template, "@")
	if at < 0 || inst == "" {
		return template
	}
	return template[:at+1] + inst + template[at+1:]
}

// decodeInstances reads `instances`: a list of names, or a count N that
// names them "1".."N". Each name is checked once; a duplicate points at the
// repeated element.
func decodeInstances(s *Service, attr *hcl.Attribute, ctx *hcl.EvalContext) hcl.Diagnostics {
	s.InstancesRange = attr.Expr.Range()
	val, ok, diags := evalAttr(attr, ctx)
	if !ok {
		return diags
	}
	bad := func(detail string, rng hcl.Range) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid instances",
			Detail:   detail,
			Subject:  rng.Ptr(),
		})
	}
	if val.Type() == cty.Number {
		bf := val.AsBigFloat()
		n, acc := bf.Int64()
		if !bf.IsInt() || acc != big.Exact || n < 1 || n > maxInstances {
			return bad(fmt.Sprintf("The instances count %s is not a whole number from 1 to %d. Give a count, such as 3 (instances \"1\", \"2\", \"3\"), or a list of names such as [\"a\", \"b\"].", bf.Text('g', -1), maxInstances), attr.Expr.Range())
		}
		for i := 1; i <= int(n); i++ {
			s.Instances = append(s.Instances, strconv.Itoa(i))
		}
		s.InstancesSet = true
		return diags
	}
	list, err := convert.Convert(val, cty.List(cty.String))
	if err != nil {
		return append(diags, invalidValue(attr, "a count or a list of instance names", err))
	}
	// The ranges of a literal list's elements, for a duplicate's subject.
	exprs, listDiags := hcl.ExprList(attr.Expr)
	elemRange := func(i int) hcl.Range {
		if !listDiags.HasErrors() && i < len(exprs) && len(exprs) == list.LengthInt() {
			return exprs[i].Range()
		}
		return attr.Expr.Range()
	}
	seen := map[string]int{}
	for i, v := range list.AsValueSlice() {
		if v.IsNull() {
			return bad("An element of instances is null. Give the instance names as strings, such as [\"1\", \"2\", \"3\"].", elemRange(i))
		}
		name := v.AsString()
		if !instanceChars.MatchString(name) {
			diags = bad(fmt.Sprintf("The instance name %q holds characters systemd does not allow in an instance. Use only letters, digits and \":_.\\-\"; escape others with systemd-escape.", name), elemRange(i))
			continue
		}
		if prev, dup := seen[name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate instance",
				Detail:   fmt.Sprintf("Instance %q is listed twice in the instances of service %q (first as element %d). Each instance is restarted once; remove the repeated one.", name, s.Name, prev+1),
				Subject:  elemRange(i).Ptr(),
			})
			continue
		}
		seen[name] = i
		s.Instances = append(s.Instances, name)
	}
	if list.LengthInt() == 0 {
		return bad("The instances list is empty. Name the instances of the template unit, such as [\"1\", \"2\", \"3\"], or give a count.", attr.Expr.Range())
	}
	s.InstancesSet = true
	return diags
}

// checkTemplate reports instances on a unit that is not a template, and
// a template unit without instances: systemd cannot restart "api@.service"
// itself.
func checkTemplate(s *Service) hcl.Diagnostics {
	if s.Unit == "" {
		return nil
	}
	switch tmpl := IsTemplateUnit(s.Unit); {
	case s.InstancesSet && !tmpl:
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Instances of a unit that is not a template",
			Detail: fmt.Sprintf("Service %q has instances, but its unit %q is not a systemd template unit. Instances need a template such as %q (its instance \"1\" is %q); or remove instances.",
				s.Name, s.Unit, templateOf(s.Unit), InstanceUnit(templateOf(s.Unit), "1")),
			Subject: s.InstancesRange.Ptr(),
		}}
	case !s.InstancesSet && !s.ColorsSet && tmpl:
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Template unit without instances",
			Detail: fmt.Sprintf("Service %q names the template unit %q, which systemd cannot restart by itself. List its instances, such as instances = [\"1\", \"2\"] (%q, %q), its two colors for a blue-green service (colors = [\"blue\", \"green\"]), or name one instance's unit.",
				s.Name, s.Unit, InstanceUnit(s.Unit, "1"), InstanceUnit(s.Unit, "2")),
			Subject: s.UnitRange.Ptr(),
		}}
	}
	return nil
}

// templateOf suggests the template of a plain unit name ("api.service" →
// "api@.service").
func templateOf(unit string) string {
	dot := strings.LastIndex(unit, ".")
	if dot <= 0 {
		return unit + "@.service"
	}
	base := strings.TrimSuffix(unit[:dot], "@")
	if at := strings.LastIndex(base, "@"); at >= 0 {
		base = base[:at]
	}
	return base + "@" + unit[dot:]
}

// Instance is one instance of a service as expressions see it:
// service.instance, service.instance_index and service.port.
type Instance struct {
	Name  string // "" for a service without instances
	Index int    // 0-based position in the service's instances
	Port  int    // the service's port expression for this instance; 0 when unset
}

// InstanceValue is ServiceValue with the instance's fields: instance (its
// name, "" without instances), instance_index (0-based) and port (0 when
// the service has no port).
func InstanceValue(s *Service, inst Instance) cty.Value {
	v := ServiceValue(s)
	if s == nil {
		return v
	}
	m := v.AsValueMap()
	m["instance"] = cty.StringVal(inst.Name)
	m["instance_index"] = cty.NumberIntVal(int64(inst.Index))
	m["port"] = cty.NumberIntVal(int64(inst.Port))
	return cty.ObjectVal(m)
}

// InstancePort evaluates the service's `port` for one instance: a number
// (an expression of service.instance and service.instance_index, such as
// 3000 + service.instance_index), or a map from instance name to port. It
// returns 0 and no diagnostics when the service has no port.
func (s *Service) InstancePort(base *hcl.EvalContext, inst Instance) (int, hcl.Diagnostics) {
	if s == nil || s.PortExpr == nil {
		return 0, nil
	}
	ctx := base.NewChild()
	inst.Port = 0
	ctx.Variables = map[string]cty.Value{rootService: InstanceValue(s, inst)}
	attr := &hcl.Attribute{Name: "port", Expr: s.PortExpr, Range: s.PortExpr.Range(), NameRange: s.PortExpr.Range()}
	val, ok, diags := evalAttr(attr, ctx)
	if !ok {
		return 0, diags
	}
	if val.Type().IsMapType() || val.Type().IsObjectType() {
		m, err := convert.Convert(val, cty.Map(cty.Number))
		if err != nil {
			return 0, append(diags, invalidValue(attr, "a port number, or a map from instance name to port", err))
		}
		pv, found := m.AsValueMap()[inst.Name]
		if !found || pv.IsNull() {
			return 0, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No port for instance",
				Detail:   fmt.Sprintf("The port map of service %q has no entry for instance %q. Add %q = PORT to the map.", s.Name, inst.Name, inst.Name),
				Subject:  s.PortExpr.Range().Ptr(),
			})
		}
		val = pv
	}
	n, err := convert.Convert(val, cty.Number)
	if err != nil {
		return 0, append(diags, invalidValue(attr, "a port number, or a map from instance name to port", err))
	}
	bf := n.AsBigFloat()
	p, acc := bf.Int64()
	if !bf.IsInt() || acc != big.Exact || p < 1 || p > 65535 {
		return 0, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid port",
			Detail:   fmt.Sprintf("The port of instance %q of service %q is %s, which is not a port from 1 to 65535.", inst.Name, s.Name, bf.Text('g', -1)),
			Subject:  s.PortExpr.Range().Ptr(),
		})
	}
	return int(p), diags
}

// refersToInstance says whether expr reads host.* or service.*: such a
// health or analysis attribute is evaluated by the planner for each
// instance.
func refersToInstance(expr hcl.Expression) bool {
	for _, t := range expr.Variables() {
		if r := t.RootName(); r == rootHost || r == rootService {
			return true
		}
	}
	return false
}

// withSampleInstance returns a child of ctx where host.* and service.*
// have the values of the service's first instance on a placeholder host,
// so that an attribute using them can be checked at decode time.
func withSampleInstance(ctx *hcl.EvalContext, s *Service) *hcl.EvalContext {
	child := withSampleHost(ctx)
	inst := Instance{}
	if len(s.Instances) > 0 {
		inst.Name = s.Instances[0]
	}
	if p, diags := s.InstancePort(ctx, inst); !diags.HasErrors() {
		inst.Port = p
	}
	child.Variables[rootService] = InstanceValue(s, inst)
	return child
}

package dsl

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

const (
	blockCanary   = "canary"
	blockAnalysis = "analysis"
)

// Analysis kinds.
const (
	AnalysisHTTP = "http"
	AnalysisExec = "exec"
)

// Canary defaults, as Argo Rollouts and Nomad leave an operator with a
// short observation of a few probes.
const (
	DefaultCanaryObserve        = time.Minute
	DefaultCanaryInterval       = 10 * time.Second
	DefaultCanaryPromoteTimeout = 10 * time.Minute
	DefaultAnalysisTimeout      = 10 * time.Second
)

var canarySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "count"},
		{Name: "observe"},
		{Name: "interval"},
		{Name: "auto_promote"},
		{Name: "promote_timeout"},
		{Name: "failure_limit"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: blockAnalysis, LabelNames: []string{"kind"}},
	},
}

var analysisSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "url"},
		{Name: "expect_status"},
		{Name: "json_path"},
		{Name: "max"},
		{Name: "min"},
		{Name: "command"},
		{Name: "timeout"},
	},
}

// Canary is a service's `canary { ... }` block: restart the first Count
// instances, observe them for Observe (their health check and every
// analysis, each Interval), then promote (at once with AutoPromote, else
// when a person confirms within PromoteTimeout) and restart the rest. A
// failed check rolls back the canaries only.
type Canary struct {
	Count          Amount // 1 when unset
	CountRange     hcl.Range
	Observe        time.Duration
	Interval       time.Duration
	AutoPromote    bool // true when unset
	PromoteTimeout time.Duration
	// FailureLimit is how many rounds of checks may fail (a blip) before
	// the canary has failed, as Argo Rollouts' failureLimit; 0: none.
	FailureLimit int
	Analyses     []*Analysis
	DeclRange    hcl.Range
}

// Analysis is one `analysis "http"|"exec" { ... }` block of a canary.
// Its url and command may read service.* and host.*: URLExpr and
// CommandExpr are then kept for the planner, which evaluates them for
// each canary instance (URL and Command hold a sample instance's value).
type Analysis struct {
	Kind string
	// http: the status must be ExpectStatus (any 2xx when 0); with
	// JSONPath, the number at that path of the JSON body must be at most
	// Max and at least Min (whichever are set).
	URL          string
	URLExpr      hcl.Expression
	ExpectStatus int
	JSONPath     string
	Max, Min     *float64
	// exec: the command (argv, no shell) must exit 0.
	Command     []string
	CommandExpr hcl.Expression
	Timeout     time.Duration // one probe; DefaultAnalysisTimeout when unset

	KindRange hcl.Range
	DeclRange hcl.Range
}

func decodeCanaryBlock(block *hcl.Block, ctx *hcl.EvalContext, svc *Service) (*Canary, hcl.Diagnostics) {
	c := &Canary{
		Count:          Amount{N: 1},
		Observe:        DefaultCanaryObserve,
		Interval:       DefaultCanaryInterval,
		AutoPromote:    true,
		PromoteTimeout: DefaultCanaryPromoteTimeout,
		DeclRange:      block.DefRange,
		CountRange:     block.DefRange,
	}
	content, diags := block.Body.Content(canarySchema)
	if attr, ok := content.Attributes["count"]; ok {
		c.CountRange = attr.Expr.Range()
		val, ok, more := evalAttr(attr, ctx)
		diags = append(diags, more...)
		if ok {
			a, err := amountValue(val)
			if err == nil && a.N < 1 {
				err = fmt.Errorf("a canary needs at least 1 instance")
			}
			if err != nil {
				diags = append(diags, invalidAmount(attr, err))
			} else {
				c.Count = a
			}
		}
	}
	positive := func(name string, d *time.Duration) {
		attr, ok := content.Attributes[name]
		if !ok {
			return
		}
		v, ok, more := attrDuration(attr, ctx)
		diags = append(diags, more...)
		if !ok || more.HasErrors() {
			return
		}
		if v <= 0 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid duration",
				Detail:   fmt.Sprintf("The %q argument of a canary must be longer than 0, such as \"30s\".", name),
				Subject:  attr.Expr.Range().Ptr(),
			})
			return
		}
		*d = v
	}
	positive("observe", &c.Observe)
	positive("interval", &c.Interval)
	positive("promote_timeout", &c.PromoteTimeout)
	if attr, ok := content.Attributes["interval"]; ok && c.Interval > c.Observe {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Canary interval longer than its observation",
			Detail:   fmt.Sprintf("The canary checks every %s but observes for only %s, so its checks would run once. Make interval shorter than observe.", c.Interval, c.Observe),
			Subject:  attr.Expr.Range().Ptr(),
		})
	}
	if attr, ok := content.Attributes["failure_limit"]; ok {
		var more hcl.Diagnostics
		c.FailureLimit, _, more = attrInt(attr, ctx, 0, 1000)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["auto_promote"]; ok {
		val, ok, more := evalAttr(attr, ctx)
		diags = append(diags, more...)
		if ok {
			if val.Type().FriendlyName() != "bool" {
				diags = append(diags, invalidValue(attr, "true or false", nil))
			} else {
				c.AutoPromote = val.True()
			}
		}
	}
	for _, ab := range content.Blocks {
		a, more := decodeAnalysisBlock(ab, ctx, svc)
		diags = append(diags, more...)
		if a != nil {
			c.Analyses = append(c.Analyses, a)
		}
	}
	return c, diags
}

// analysisKindAttrs says which kind each kind-specific attribute belongs to.
var analysisKindAttrs = map[string]string{
	"url":           AnalysisHTTP,
	"expect_status": AnalysisHTTP,
	"json_path":     AnalysisHTTP,
	"max":           AnalysisHTTP,
	"min":           AnalysisHTTP,
	"command":       AnalysisExec,
}

func decodeAnalysisBlock(block *hcl.Block, ctx *hcl.EvalContext, svc *Service) (*Analysis, hcl.Diagnostics) {
	a := &Analysis{
		Kind:      block.Labels[0],
		KindRange: block.LabelRanges[0],
		DeclRange: block.DefRange,
		Timeout:   DefaultAnalysisTimeout,
	}
	content, diags := block.Body.Content(analysisSchema)
	if a.Kind != AnalysisHTTP && a.Kind != AnalysisExec {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown analysis kind",
			Detail:   fmt.Sprintf("%q is not an analysis kind. Use \"http\" (a URL's status, or a number in its JSON body) or \"exec\" (a command's exit status).%s", a.Kind, DidYouMean(a.Kind, []string{AnalysisHTTP, AnalysisExec})),
			Subject:  a.KindRange.Ptr(),
		})
	}
	for _, name := range []string{"url", "expect_status", "json_path", "max", "min", "command"} {
		kind := analysisKindAttrs[name]
		attr, ok := content.Attributes[name]
		if !ok || kind == a.Kind {
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   fmt.Sprintf("The %q argument applies only to %q analyses, not %q ones. Remove it, or change the kind.", name, kind, a.Kind),
			Subject:  attr.NameRange.Ptr(),
		})
		delete(content.Attributes, name)
	}
	required := map[string]string{AnalysisHTTP: "url", AnalysisExec: "command"}[a.Kind]
	if _, ok := content.Attributes[required]; !ok {
		example := `url = "http://localhost:${service.port}/metrics"`
		if a.Kind == AnalysisExec {
			example = `command = ["/usr/local/bin/check-errors", service.instance]`
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing required argument",
			Detail:   fmt.Sprintf("An %q analysis needs the %q argument: what to check on each canary instance, such as %s.", a.Kind, required, example),
			Subject:  block.Body.MissingItemRange().Ptr(),
		})
	}
	instCtx := func(attr *hcl.Attribute, keep *hcl.Expression) *hcl.EvalContext {
		if !refersToInstance(attr.Expr) {
			return ctx
		}
		*keep = attr.Expr
		return withSampleInstance(ctx, svc)
	}
	if attr, ok := content.Attributes["url"]; ok {
		s, ok, more := attrString(attr, instCtx(attr, &a.URLExpr))
		diags = append(diags, more...)
		if ok {
			a.URL = s
			vd := validateHealthURL(s, attr)
			for _, d := range vd {
				d.Detail = strings.Replace(d.Detail, "health check URL", "analysis URL", 1)
			}
			diags = append(diags, vd...)
		}
	}
	if attr, ok := content.Attributes["expect_status"]; ok {
		var more hcl.Diagnostics
		a.ExpectStatus, _, more = attrInt(attr, ctx, 100, 599)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["json_path"]; ok {
		var more hcl.Diagnostics
		a.JSONPath, _, more = attrString(attr, ctx)
		diags = append(diags, more...)
		if _, err := ParseJSONPath(a.JSONPath); err != nil && !more.HasErrors() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid JSON path",
				Detail:   fmt.Sprintf("The json_path %q cannot be read: %s. Give keys and indexes separated by dots, such as \"errors.rate\" or \"$.checks.0.value\".", a.JSONPath, err),
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	for _, name := range []string{"max", "min"} {
		attr, ok := content.Attributes[name]
		if !ok {
			continue
		}
		val, ok, more := evalAttr(attr, ctx)
		diags = append(diags, more...)
		if !ok {
			continue
		}
		if val.Type().FriendlyName() != "number" {
			diags = append(diags, invalidValue(attr, "a number", nil))
			continue
		}
		f, _ := val.AsBigFloat().Float64()
		if name == "max" {
			a.Max = &f
		} else {
			a.Min = &f
		}
	}
	_, hasPath := content.Attributes["json_path"]
	_, hasMax := content.Attributes["max"]
	_, hasMin := content.Attributes["min"]
	switch {
	case hasPath && !hasMax && !hasMin:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "JSON path without a bound",
			Detail:   "The analysis reads a number at json_path but has neither max nor min to compare it with. Add max (the number must be at most this) or min.",
			Subject:  content.Attributes["json_path"].Expr.Range().Ptr(),
		})
	case !hasPath && (hasMax || hasMin):
		name := "max"
		if !hasMax {
			name = "min"
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Bound without a JSON path",
			Detail:   fmt.Sprintf("The analysis has %s but no json_path saying which number of the response's JSON body to compare. Add json_path, such as \"errors.rate\".", name),
			Subject:  content.Attributes[name].NameRange.Ptr(),
		})
	case a.Max != nil && a.Min != nil && *a.Min > *a.Max:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Empty range",
			Detail:   fmt.Sprintf("The analysis wants a number at least %g and at most %g, which no number is. Swap min and max.", *a.Min, *a.Max),
			Subject:  content.Attributes["min"].Expr.Range().Ptr(),
		})
	}
	if attr, ok := content.Attributes["command"]; ok {
		cmd, ok, more := attrStringList(attr, instCtx(attr, &a.CommandExpr))
		diags = append(diags, more...)
		if ok && (len(cmd) == 0 || cmd[0] == "") {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Empty command",
				Detail:   `An exec analysis needs a command: a list whose first element is the program, such as ["/usr/local/bin/check-errors"]. It runs without a shell; exit status 0 passes.`,
				Subject:  attr.Expr.Range().Ptr(),
			})
		} else if ok {
			a.Command = cmd
		}
	}
	if attr, ok := content.Attributes["timeout"]; ok {
		d, ok, more := attrDuration(attr, ctx)
		diags = append(diags, more...)
		if ok && !more.HasErrors() && d > 0 {
			a.Timeout = d
		}
	}
	return a, diags
}

// ParseJSONPath splits a json_path ("errors.rate", "$.checks.0.value",
// "checks[0].value") into its keys; a key of digits also indexes an array.
func ParseJSONPath(p string) ([]string, error) {
	p = strings.TrimSpace(p)
	p = strings.TrimPrefix(strings.TrimPrefix(p, "$"), ".")
	p = strings.ReplaceAll(strings.ReplaceAll(p, "[", "."), "]", "")
	if p == "" {
		return nil, fmt.Errorf("it is empty")
	}
	keys := strings.Split(p, ".")
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("it has an empty key")
		}
	}
	return keys, nil
}

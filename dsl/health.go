package dsl

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

const blockHealth = "health"

var healthSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "url"},
		{Name: "expect_status"},
		{Name: "address"},
		{Name: "command"},
		{Name: "timeout"},
		{Name: "retries"},
		{Name: "interval"},
	},
}

// healthKindAttrs says which kind each kind-specific attribute belongs to.
var healthKindAttrs = map[string]string{
	"url":           HealthHTTP,
	"expect_status": HealthHTTP,
	"address":       HealthTCP,
	"command":       HealthExec,
}

// healthRequired is the attribute each kind cannot do without.
var healthRequired = map[string]string{
	HealthHTTP: "url",
	HealthTCP:  "address",
	HealthExec: "command",
}

// decodeHealthBlock decodes a service's health block. It returns nil when
// the kind is unknown, after reporting it.
//
// svc is the service it belongs to, decoded up to its blocks: url, address
// and command may read service.* (service.port, service.instance), checked
// here with the service's first instance.
func decodeHealthBlock(block *hcl.Block, ctx *hcl.EvalContext, svc *Service) (*Health, hcl.Diagnostics) {
	h := &Health{
		Kind:      block.Labels[0],
		KindRange: block.LabelRanges[0],
		DeclRange: block.DefRange,
	}
	content, diags := block.Body.Content(healthSchema)
	switch h.Kind {
	case HealthHTTP, HealthTCP, HealthSystemd, HealthExec:
	default:
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown health check kind",
			Detail:   fmt.Sprintf("%q is not a health check kind. Use one of \"http\", \"tcp\", \"systemd\" or \"exec\".", h.Kind),
			Subject:  h.KindRange.Ptr(),
		})
	}

	for _, name := range []string{"url", "expect_status", "address", "command"} {
		attr, ok := content.Attributes[name]
		if !ok || healthKindAttrs[name] == h.Kind {
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   fmt.Sprintf("The %q argument applies only to %q health checks, not %q ones. Remove it, or change the kind.", name, healthKindAttrs[name], h.Kind),
			Subject:  attr.NameRange.Ptr(),
		})
		delete(content.Attributes, name)
	}
	if req, ok := healthRequired[h.Kind]; ok {
		if _, set := content.Attributes[req]; !set {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   fmt.Sprintf("A %q health check needs the %q argument.", h.Kind, req),
				Subject:  block.Body.MissingItemRange().Ptr(),
			})
		}
	}

	// url, address and command may read host.* and service.*: they are
	// checked here with a placeholder host and the first instance, and
	// kept for the planner, which evaluates them for each instance.
	hostCtx := func(attr *hcl.Attribute, keep *hcl.Expression) *hcl.EvalContext {
		if !refersToInstance(attr.Expr) {
			return ctx
		}
		*keep = attr.Expr
		return withSampleInstance(ctx, svc)
	}
	// A value that depends on which host it is for (a port looked up by
	// host.name) cannot be computed for the placeholder host: its errors
	// there are dropped, and the planner reports those of each real host.
	sampleOnly := func(attr *hcl.Attribute, more hcl.Diagnostics) hcl.Diagnostics {
		if more.HasErrors() && refersToHost(attr.Expr) {
			return nil
		}
		return more
	}
	if attr, ok := content.Attributes["url"]; ok {
		if s, ok, more := attrString(attr, hostCtx(attr, &h.URLExpr)); ok {
			h.URL = s
			diags = append(diags, more...)
			diags = append(diags, validateHealthURL(s, attr)...)
		} else {
			diags = append(diags, sampleOnly(attr, more)...)
		}
	}
	if attr, ok := content.Attributes["expect_status"]; ok {
		var more hcl.Diagnostics
		h.ExpectStatus, _, more = attrInt(attr, ctx, 100, 599)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["address"]; ok {
		if s, ok, more := attrString(attr, hostCtx(attr, &h.AddressExpr)); ok {
			h.Address = s
			diags = append(diags, more...)
			diags = append(diags, validateTCPAddress(s, attr)...)
		} else {
			diags = append(diags, sampleOnly(attr, more)...)
		}
	}
	if attr, ok := content.Attributes["command"]; ok {
		cmd, ok, more := attrStringList(attr, hostCtx(attr, &h.CommandExpr))
		diags = append(diags, sampleOnly(attr, more)...)
		if ok && (len(cmd) == 0 || cmd[0] == "") {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Empty command",
				Detail:   `An exec health check needs a command: a list whose first element is the program, such as ["pg_isready", "-q"]. It runs without a shell.`,
				Subject:  attr.Expr.Range().Ptr(),
			})
		} else if ok {
			h.Command = cmd
		}
	}
	if attr, ok := content.Attributes["timeout"]; ok {
		var more hcl.Diagnostics
		h.Timeout, h.TimeoutSet, more = attrDuration(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["retries"]; ok {
		var more hcl.Diagnostics
		h.Retries, h.RetriesSet, more = attrInt(attr, ctx, MinRetries, MaxRetries)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["interval"]; ok {
		var more hcl.Diagnostics
		h.Interval, h.IntervalSet, more = attrDuration(attr, ctx)
		diags = append(diags, more...)
	}
	return h, diags
}

func validateHealthURL(s string, attr *hcl.Attribute) hcl.Diagnostics {
	u, err := url.Parse(s)
	reason := ""
	switch {
	case err != nil:
		reason = "it does not parse"
	case u.Scheme != "http" && u.Scheme != "https":
		reason = "its scheme is not http or https"
	case u.Host == "" || u.Hostname() == "":
		reason = "it has no host"
	default:
		return nil
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid URL",
		Detail:   fmt.Sprintf("The health check URL %q cannot be used: %s. Give a full URL such as \"http://localhost:3001/health\".", s, reason),
		Subject:  attr.Expr.Range().Ptr(),
	}}
}

func validateTCPAddress(s string, attr *hcl.Attribute) hcl.Diagnostics {
	_, port, err := net.SplitHostPort(s)
	reason := ""
	switch {
	case err != nil:
		reason = strings.TrimPrefix(err.Error(), "address "+s+": ")
	case port == "":
		reason = "the port is empty"
	default:
		return nil
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid address",
		Detail:   fmt.Sprintf("The TCP address %q cannot be used: %s. Give host:port, such as \"localhost:5432\" or \"[::1]:6379\".", s, reason),
		Subject:  attr.Expr.Range().Ptr(),
	}}
}

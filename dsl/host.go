package dsl

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

const blockHost = "host"

// rootHost is the expression root bound to the host an instance runs on
// (host.name, host.address, ...), in step attributes and in health url,
// address and command.
const rootHost = "host"

var hostSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "address", Required: true},
		{Name: "user"},
		{Name: "port"},
		{Name: "ssh_args"},
		{Name: "systemd_bus"},
		{Name: "tags"},
	},
}

// Host is a `host "name" { ... }` block: a machine reached with the user's
// own ssh. Its attributes may use var.* and functions.
type Host struct {
	Name string
	// Address is an ssh destination: a name or IP, or a Host alias from
	// ~/.ssh/config.
	Address string
	User    string // "" = ssh's choice (~/.ssh/config, else the local user)
	Port    int    // 0 = ssh's choice
	SSHArgs []string
	// SystemdBus is the D-Bus address of the manager on the host, handed
	// to systemd-stdio-bridge; "" is the system manager.
	SystemdBus string
	Tags       []string

	NameRange    hcl.Range
	AddressRange hcl.Range
	DeclRange    hcl.Range
}

// hostNameChars keeps host names usable in instance names (svc@host),
// events and file names.
var hostNameChars = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func decodeHostBlock(block *hcl.Block, ctx *hcl.EvalContext) (*Host, hcl.Diagnostics) {
	h := &Host{
		Name:      block.Labels[0],
		NameRange: block.LabelRanges[0],
		DeclRange: block.DefRange,
	}
	content, diags := block.Body.Content(hostSchema)
	diags = append(diags, emptyLabel("host", h.Name, h.NameRange)...)
	if h.Name != "" && !hostNameChars.MatchString(h.Name) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid host name",
			Detail:   fmt.Sprintf("The host name %q may hold only letters, digits, \".\", \"_\" and \"-\", and must start with a letter or digit. It names the host in instances (service@host) and events; put the machine's address in the address argument.", h.Name),
			Subject:  h.NameRange.Ptr(),
		})
	}
	if attr, ok := content.Attributes["address"]; ok {
		h.AddressRange = attr.Expr.Range()
		s, ok, more := attrString(attr, ctx)
		diags = append(diags, more...)
		switch {
		case ok && (s == "" || strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\n")):
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid host address",
				Detail:   fmt.Sprintf("The address %q is not an ssh destination. Give a host name, an IP address or a Host from ~/.ssh/config, such as \"10.0.3.17\" or \"app-1.internal\"; put the user and port in their own arguments.", s),
				Subject:  attr.Expr.Range().Ptr(),
			})
		case ok:
			h.Address = s
		}
	}
	if attr, ok := content.Attributes["user"]; ok {
		var more hcl.Diagnostics
		h.User, _, more = attrString(attr, ctx)
		diags = append(diags, more...)
		if strings.HasPrefix(h.User, "-") || strings.ContainsAny(h.User, " @\t\n") {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid host user",
				Detail:   fmt.Sprintf("The user %q is not a login name. Give the remote account's name, such as \"deploy\".", h.User),
				Subject:  attr.Expr.Range().Ptr(),
			})
			h.User = ""
		}
	}
	if attr, ok := content.Attributes["port"]; ok {
		var more hcl.Diagnostics
		h.Port, _, more = attrInt(attr, ctx, 1, 65535)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["ssh_args"]; ok {
		var more hcl.Diagnostics
		h.SSHArgs, _, more = attrStringList(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["systemd_bus"]; ok {
		var more hcl.Diagnostics
		h.SystemdBus, _, more = attrString(attr, ctx)
		diags = append(diags, more...)
		if h.SystemdBus != "" && !strings.Contains(h.SystemdBus, ":") {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid systemd bus address",
				Detail:   fmt.Sprintf("The systemd_bus %q is not a D-Bus address. Give one such as \"unix:path=/run/user/1000/bus\" for a user manager, or leave it out for the system manager.", h.SystemdBus),
				Subject:  attr.Expr.Range().Ptr(),
			})
			h.SystemdBus = ""
		}
	}
	if attr, ok := content.Attributes["tags"]; ok {
		var more hcl.Diagnostics
		h.Tags, _, more = attrStringList(attr, ctx)
		diags = append(diags, more...)
	}
	return h, diags
}

// hostValueType is the type of HostValue's result.
var hostValueType = cty.Object(map[string]cty.Type{
	"name":    cty.String,
	"address": cty.String,
	"user":    cty.String,
	"port":    cty.Number,
	"tags":    cty.List(cty.String),
})

// HostValue is the object bound to `host` for an instance on h: name,
// address, user, port (0 when unset), tags. A nil h (a service that runs
// where rollout runs) gives name "" and address "localhost", so that a url
// built from host.address still reaches the local service.
func HostValue(h *Host) cty.Value {
	if h == nil {
		return cty.ObjectVal(map[string]cty.Value{
			"name":    cty.StringVal(""),
			"address": cty.StringVal("localhost"),
			"user":    cty.StringVal(""),
			"port":    cty.NumberIntVal(0),
			"tags":    cty.ListValEmpty(cty.String),
		})
	}
	return cty.ObjectVal(map[string]cty.Value{
		"name":    cty.StringVal(h.Name),
		"address": cty.StringVal(h.Address),
		"user":    cty.StringVal(h.User),
		"port":    cty.NumberIntVal(int64(h.Port)),
		"tags":    stringList(h.Tags),
	})
}

// refersToHost says whether expr reads host.*.
func refersToHost(expr hcl.Expression) bool {
	for _, t := range expr.Variables() {
		if t.RootName() == rootHost {
			return true
		}
	}
	return false
}

// withSampleHost returns a child of ctx where host.* has placeholder
// values, so that a health attribute using host.address can be checked at
// decode time; the planner evaluates it again for each real host.
func withSampleHost(ctx *hcl.EvalContext) *hcl.EvalContext {
	child := ctx.NewChild()
	child.Variables = map[string]cty.Value{rootHost: HostValue(&Host{Name: "host", Address: "host.invalid"})}
	return child
}

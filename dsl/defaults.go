package dsl

import (
	"github.com/hashicorp/hcl/v2"
)

const blockDefaults = "defaults"

var defaultsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "health_timeout"},
		{Name: "health_retries"},
		{Name: "health_interval"},
		{Name: "events_log"},
		{Name: "min_free_space"},
	},
}

// decodeDefaultsBlock decodes the defaults block; its attributes may use
// var.* and functions, as ctx provides.
func decodeDefaultsBlock(block *hcl.Block, ctx *hcl.EvalContext) (*Defaults, hcl.Diagnostics) {
	d := &Defaults{DeclRange: block.DefRange}
	content, diags := block.Body.Content(defaultsSchema)
	if attr, ok := content.Attributes["health_timeout"]; ok {
		var more hcl.Diagnostics
		d.HealthTimeout, d.HealthTimeoutSet, more = attrDuration(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["health_retries"]; ok {
		var more hcl.Diagnostics
		d.HealthRetries, d.HealthRetriesSet, more = attrInt(attr, ctx, MinRetries, MaxRetries)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["health_interval"]; ok {
		var more hcl.Diagnostics
		d.HealthInterval, d.HealthIntervalSet, more = attrDuration(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["events_log"]; ok {
		var more hcl.Diagnostics
		d.EventsLog, d.EventsLogSet, more = attrString(attr, ctx)
		diags = append(diags, more...)
	}
	if attr, ok := content.Attributes["min_free_space"]; ok {
		var more hcl.Diagnostics
		d.MinFreeSpace, d.MinFreeSpaceSet, more = attrSize(attr, ctx)
		diags = append(diags, more...)
	}
	return d, diags
}

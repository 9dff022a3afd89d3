package planner

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
)

// testStepTypes is a small registry standing in for the steps package's,
// which the planner may not import.
func testStepTypes() map[string]StepType {
	durationArg := func(name string) func(map[string]cty.Value, func(string) hcl.Range) hcl.Diagnostics {
		return func(args map[string]cty.Value, rng func(string) hcl.Range) hcl.Diagnostics {
			v := args[name]
			if v.IsNull() || !v.IsKnown() {
				return nil
			}
			if _, err := time.ParseDuration(v.AsString()); err != nil {
				r := rng(name)
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Invalid duration",
					Detail:   fmt.Sprintf("The %s %q is not a duration. Write it as \"30s\" or \"5m\".", name, v.AsString()),
					Subject:  &r,
				}}
			}
			return nil
		}
	}
	return map[string]StepType{
		"health_check": {Name: "health_check", Spec: hcldec.ObjectSpec{}, Check: true, Estimate: func(_ map[string]cty.Value, h *Health) Span {
			return Span{Worst: time.Duration(h.Retries) * (h.Timeout + h.Interval)}
		}},
		"restart":     {Name: "restart", Spec: hcldec.ObjectSpec{}, Rollback: "restart with the restored unit"},
		"backup_unit": {Name: "backup_unit", Spec: hcldec.ObjectSpec{}, Rollback: "restore the unit file, daemon-reload"},
		"rsync": {Name: "rsync", Rollback: "restore the snapshot", UniqueArgs: []string{"from", "to"}, Spec: hcldec.ObjectSpec{
			"from": &hcldec.AttrSpec{Name: "from", Type: cty.String, Required: true},
			"to":   &hcldec.AttrSpec{Name: "to", Type: cty.String, Required: true},
		}},
		"exec": {Name: "exec", Rollback: "rollback_command, else irreversible", Validate: durationArg("timeout"), Spec: hcldec.ObjectSpec{
			"command":          &hcldec.AttrSpec{Name: "command", Type: cty.List(cty.String), Required: true},
			"dir":              &hcldec.AttrSpec{Name: "dir", Type: cty.String},
			"timeout":          &hcldec.AttrSpec{Name: "timeout", Type: cty.String},
			"rollback_command": &hcldec.AttrSpec{Name: "rollback_command", Type: cty.List(cty.String)},
		}},
		"stabilize": {Name: "stabilize", Check: true, Validate: durationArg("duration"), Estimate: func(args map[string]cty.Value, h *Health) Span {
			d, _ := time.ParseDuration(args["duration"].AsString())
			return Span{Typical: d, Worst: d}
		}, Spec: hcldec.ObjectSpec{
			"duration": &hcldec.AttrSpec{Name: "duration", Type: cty.String, Required: true},
		}},
	}
}

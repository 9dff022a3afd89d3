// Package plans holds the canned plans. Only demo.hcl is compiled into the
// rollout binary, so that `rollout demo` works from any directory.
package plans

import _ "embed"

// Demo is plans/demo.hcl, the plan `rollout demo` runs.
//
//go:embed demo.hcl
var Demo []byte

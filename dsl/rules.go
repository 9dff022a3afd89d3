package dsl

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// The rules below are the plan language's, for plan attributes (health
// blocks, defaults) and step arguments (package steps) alike, so that a
// value is accepted or refused the same way wherever it is written.

// Health check attempts: retries = N means N attempts in all.
const (
	MinRetries = 1
	MaxRetries = 1000
)

// Errors of ParseDuration, for errors.Is.
var (
	ErrDurationSyntax   = errors.New("not a number followed by a unit (ns, us, ms, s, m or h)")
	ErrDurationNotAbove = errors.New("not greater than zero")
)

// ParseDuration reads a duration such as "30s", "1m30s" or "500ms". It must
// be greater than zero: no duration of the plan language means "the
// default" or "no limit", so a zero is refused instead of being replaced
// at run time by something the plan does not say.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is %w", s, ErrDurationSyntax)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is %w", s, ErrDurationNotAbove)
	}
	return d, nil
}

// InvalidDuration is the diagnostic for the argument name whose value
// ParseDuration refused with err.
func InvalidDuration(name string, err error, subject hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid duration",
		Detail: fmt.Sprintf("The %q argument must be a duration greater than zero, but %s. "+
			"Use a number with a unit, such as \"30s\", \"1m30s\" or \"500ms\".", name, err),
		Subject: subject.Ptr(),
	}
}

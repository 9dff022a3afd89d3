package main

import "testing"

// plan validate refuses a pipeline that takes a service out of a load
// balancer's traffic and never puts it back: once per step, naming the
// services, with the step's file:line:column.
func TestValidateTrafficNeverRestored(t *testing.T) {
	ios, out, _ := testStreams()
	err := validateRun(&ValidateOptions{IO: ios, Files: []string{"testdata/traffic/main.hcl"}, Format: "text"})
	if code := exitCode(err); code != exitFailed {
		t.Fatalf("exit code = %d (%v), want %d\n%s", code, err, exitFailed, out)
	}
	golden(t, "traffic/want.text", out.Bytes())
}

// plan validate refuses blue-green steps that cannot work: one color, no
// load balancer to switch, two colors on one port, a deploy to colors
// without code directories, a relative upstream file; each with its
// file:line:column, the source line and what to do.
func TestValidateBlueGreenNonsense(t *testing.T) {
	ios, out, _ := testStreams()
	err := validateRun(&ValidateOptions{IO: ios, Files: []string{"testdata/bluegreen/main.hcl"}, Format: "text"})
	if code := exitCode(err); code != exitFailed {
		t.Fatalf("exit code = %d (%v), want %d\n%s", code, err, exitFailed, out)
	}
	golden(t, "bluegreen/want.text", out.Bytes())
}

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

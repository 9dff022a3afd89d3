package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanShowCannedPlans is the golden of the real `plan show` output of
// every canned plan, compiled with the real step types (the planner's own
// goldens use a stand-in registry whose texts differ): a change to a step
// type's description, estimate or argument shows up here for review.
// Rewrite with `go test ./cmd/rollout -run TestPlanShowCannedPlans -update`.
func TestPlanShowCannedPlans(t *testing.T) {
	files, _ := filepath.Glob("../../plans/*.hcl")
	var roots []string
	for _, f := range files {
		src, _ := os.ReadFile(f)
		if strings.Contains(string(src), "\nplan \"") {
			roots = append(roots, f)
		}
	}
	if len(roots) < 4 {
		t.Fatalf("found %d canned plans, want at least 4: %v", len(roots), roots)
	}
	for _, file := range roots {
		name := strings.TrimSuffix(filepath.Base(file), ".hcl")
		for _, format := range []string{"text", "json"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				ios, out, errOut := testStreams()
				if err := showRun(&ShowOptions{IO: ios, File: file, Format: format}); err != nil {
					t.Fatalf("plan show %s: %v\n%s", file, err, errOut)
				}
				golden(t, filepath.Join("show", name+"."+format), out.Bytes())
			})
		}
	}
}

// The blue-green canned plan in the graph formats: the service's node
// names its switch.
func TestPlanShowBlueGreenGraphs(t *testing.T) {
	for _, format := range []string{"dot", "mermaid"} {
		t.Run(format, func(t *testing.T) {
			ios, out, errOut := testStreams()
			if err := showRun(&ShowOptions{IO: ios, File: "../../plans/blue-green-nginx.hcl", Format: format}); err != nil {
				t.Fatalf("plan show: %v\n%s", err, errOut)
			}
			golden(t, filepath.Join("show", "blue-green-nginx."+format), out.Bytes())
		})
	}
}

package planner

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/rollout-sh/rollout/dsl"
)

func TestSerialBatches(t *testing.T) {
	pct := func(n int) dsl.Amount { return dsl.Amount{N: n, Percent: true} }
	num := func(n int) dsl.Amount { return dsl.Amount{N: n} }
	tests := []struct {
		serial []dsl.Amount
		n      int
		want   []int
	}{
		{nil, 5, []int{5}},
		{[]dsl.Amount{num(1)}, 3, []int{1, 1, 1}},
		{[]dsl.Amount{num(1), pct(25), pct(100)}, 10, []int{1, 2, 7}},
		{[]dsl.Amount{num(1), pct(25)}, 10, []int{1, 2, 2, 2, 2, 1}},
		{[]dsl.Amount{pct(10)}, 3, []int{1, 1, 1}}, // a percentage is at least 1
		{[]dsl.Amount{num(5)}, 2, []int{2}},
		{[]dsl.Amount{num(1)}, 0, nil},
	}
	for _, tt := range tests {
		if got := SerialBatches(tt.serial, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("SerialBatches(%v, %d) = %v, want %v", tt.serial, tt.n, got, tt.want)
		}
	}
}

// TestHostNarrowing: --host keeps the instances on the named hosts, drops
// services that run where rollout runs, and keeps dependencies between the
// remaining instances.
func TestHostNarrowing(t *testing.T) {
	cfg := load(t, filepath.Join("testdata", "show_fleet", "main.hcl"))
	plan, diags := Compile(cfg, Options{StepTypes: testStepTypes(), Hosts: []string{"app2"}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if want := []string{"api@app2", "web@app2"}; !slices.Equal(plan.Order, want) {
		t.Fatalf("order %v, want %v", plan.Order, want)
	}
	web := plan.Services[1]
	if !slices.Equal(web.Needs, []string{"api@app2"}) || web.Host == nil || web.Host.Name != "app2" || web.ServiceName() != "web" {
		t.Fatalf("web: needs %v host %v service %q", web.Needs, web.Host, web.ServiceName())
	}
	if len(plan.Hosts) != 1 || plan.Hosts[0].Name != "app2" {
		t.Fatalf("hosts %v", plan.Hosts)
	}
	// Instances of one host share one Host value.
	if plan.Services[0].Host != plan.Services[1].Host {
		t.Fatal("instances on app2 hold different Host values")
	}
}

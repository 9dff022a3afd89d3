package planner

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// generatedSource writes a platform of n services as HCL: a random DAG
// (each service depends on up to three earlier ones) over three pipelines
// of six or seven steps, with per-service expressions to evaluate.
func generatedSource(n int) string {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	var b strings.Builder
	b.WriteString(`
pipeline "api" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    to   = service.working_dir
  }
  step "exec" "migrate" {
    if      = !run.skip_migrations
    command = ["npx", "prisma", "migrate", "deploy"]
    dir     = service.working_dir
    timeout = "5m"
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = "30s" }
}
pipeline "infra" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "exec" "warm" { command = ["/usr/local/bin/warm", service.name] }
  step "stabilize" "settle" { duration = "10s" }
}
pipeline "worker" {
  step "health_check" "precheck" {}
  step "exec" "drain" {
    command = ["/usr/local/bin/drain", service.unit]
    timeout = "1m"
  }
  step "backup_unit" "backup" {}
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = "5s" }
}
`)
	types := []string{"api", "infra", "worker"}
	for i := range n {
		fmt.Fprintf(&b, "service \"svc%d.api\" {\n  unit = \"svc%d.service\"\n  type = %q\n  working_dir = \"/srv/svc%d\"\n", i, i, types[r.IntN(3)], i)
		if i > 0 {
			var deps []string
			for range r.IntN(4) {
				deps = append(deps, fmt.Sprintf("%q", fmt.Sprintf("svc%d.api", r.IntN(i))))
			}
			fmt.Fprintf(&b, "  depends_on = [%s]\n", strings.Join(deps, ", "))
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// processCPU is the user and system CPU time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cfg := loadString(b, generatedSource(n))
			opts := Options{StepTypes: testStepTypes(), Run: RunFlags{Deploy: true, DeployPath: "/release"}}
			b.ReportAllocs()
			// CPU time (GC included) per op alongside wall time: on a
			// shared machine wall time also counts waiting for a CPU.
			startCPU := processCPU()
			ops := 0
			for b.Loop() {
				plan, diags := Compile(cfg, opts)
				if diags.HasErrors() || plan == nil || len(plan.Services) != n {
					b.Fatalf("compile: %s", diags.Error())
				}
				ops++
			}
			b.ReportMetric(float64(processCPU()-startCPU)/float64(ops), "cpu-ns/op")
		})
	}
}

package dsl

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkLoad(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("variable \"region\" { default = \"eu\" }\n")
	sb.WriteString("pipeline \"default\" {\n  step \"restart\" \"restart\" {}\n  step \"health_check\" \"verify\" {}\n}\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, `service "svc-%d" {
  unit        = "svc-%d.service"
  type        = "api"
  depends_on  = [%s]
  working_dir = "/srv/${var.region}/svc-%d"
  tags        = ["core", "batch-%d"]
  meta        = { owner = "team-%d" }
  health "http" {
    url     = "http://localhost:%d/health"
    timeout = "5s"
    retries = 3
  }
}
`, i, i, dependsOn(i), i, i%10, i%7, 10000+i)
	}
	files := memFS{"main.hcl": sb.String()}
	opts := files.options(nil)
	b.SetBytes(int64(sb.Len()))
	b.ResetTimer()
	for b.Loop() {
		cfg, diags := Load("main.hcl", opts)
		if diags.HasErrors() || len(cfg.Services) != 1000 {
			b.Fatalf("%d services, %s", len(cfg.Services), diags.Error())
		}
	}
}

func dependsOn(i int) string {
	if i == 0 {
		return ""
	}
	return fmt.Sprintf("%q", fmt.Sprintf("svc-%d", i-1))
}

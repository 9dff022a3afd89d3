package executor

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rollout-sh/rollout/planner"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestManualRollbackGolden pins the text a person reads after a failed
// rollback, per health check kind and manager.
func TestManualRollbackGolden(t *testing.T) {
	tests := []struct {
		name   string
		health *planner.Health
		user   bool
		unit   string
		causes []error
	}{
		{"http_system", &planner.Health{Kind: "http", URL: "http://localhost:3001/health"}, false, "", nil},
		{"tcp_user", &planner.Health{Kind: "tcp", Address: "127.0.0.1:6379"}, true, "", nil},
		{"exec_system", &planner.Health{Kind: "exec", Command: []string{"pg_isready", "-h", "/run/postgresql"}}, false, "", nil},
		{"systemd_system", &planner.Health{Kind: "systemd"}, false, "", nil},
		// An instance unit's escaped name survives a paste into a shell,
		// and a stop that hung is followed by a kill.
		{"stop_hung_escaped_unit", &planner.Health{Kind: "systemd"}, true, `adv\x2dq@a\x2db.service`,
			[]error{fmt.Errorf("stop x: no result after 2s: %w", ErrStopTimedOut)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &planner.Service{Name: "sso.api", Unit: "lilith-sso-api.service", Health: tt.health}
			if tt.unit != "" {
				svc.Unit = tt.unit
			}
			got := manualRollback(svc, []string{
				"restore /etc/systemd/system/lilith-sso-api.service from lilith-sso-api.service.backup, daemon-reload",
				"reopen: start lilith-sso-api.service, verify health",
			}, tt.causes, tt.user) + "\n"
			path := filepath.Join("testdata", "manual_"+tt.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("manual rollback text:\n%s\nwant (%s):\n%s", got, path, want)
			}
		})
	}
}

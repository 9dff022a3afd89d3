package steps

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// TestStepNeeds: each step type declares what preflight must check, read
// from its resolved arguments and the service.
func TestStepNeeds(t *testing.T) {
	svc := &planner.Service{Name: "a", Unit: "a.service", WorkingDir: "/srv/a",
		Health: &planner.Health{Kind: dsl.HealthExec, Command: []string{"check-a"}}}
	sysd := &planner.Service{Name: "b", Unit: "b.service", Health: &planner.Health{Kind: dsl.HealthSystemd}}
	str := cty.StringVal
	list := func(s ...string) cty.Value {
		var vs []cty.Value
		for _, x := range s {
			vs = append(vs, str(x))
		}
		return cty.ListVal(vs)
	}
	tests := []struct {
		typ  string
		svc  *planner.Service
		args map[string]cty.Value
		want planner.Needs
	}{
		{TypeRsync, svc, map[string]cty.Value{"from": str("/release/a"), "to": str("/srv/a")}, planner.Needs{
			Programs: []planner.Program{{Name: "rsync", Use: "rsync step"}},
			Copies:   []planner.Copy{{From: "/release/a", To: "/srv/a"}},
		}},
		{TypeRelease, svc, map[string]cty.Value{"from": str("/release/a")}, planner.Needs{
			Copies: []planner.Copy{{From: "/release/a"}},
		}},
		{TypeExec, svc, map[string]cty.Value{"command": list("./bin/migrate", "up"), "rollback_command": list("undo"), "dir": str("/srv/a")}, planner.Needs{
			Programs: []planner.Program{{Name: "./bin/migrate", Dir: "/srv/a", Use: "command"}, {Name: "undo", Dir: "/srv/a", Use: "rollback_command"}},
			Dirs:     []string{"/srv/a"},
		}},
		{TypeExec, svc, map[string]cty.Value{"command": cty.UnknownVal(cty.List(cty.String))}, planner.Needs{}},
		{TypeHealthCheck, svc, nil, planner.Needs{Programs: []planner.Program{{Name: "check-a", Use: "health check"}}}},
		{TypeHealthCheck, sysd, nil, planner.Needs{Units: []string{"b.service"}}},
		{TypeBackupUnit, svc, map[string]cty.Value{"unit": str("other.service")}, planner.Needs{Units: []string{"other.service"}}},
		{TypeReloadOrRestart, svc, nil, planner.Needs{Programs: []planner.Program{{Name: "check-a", Use: "health check"}}, Units: []string{"a.service"}}},
		{TypeStop, sysd, map[string]cty.Value{"unit": str("c.service")}, planner.Needs{Units: []string{"c.service"}}},
		{TypeStabilize, sysd, nil, planner.Needs{Units: []string{"b.service"}}},
		{TypeNginxUpstream, svc, map[string]cty.Value{"nginx": str("/usr/sbin/nginx")}, planner.Needs{Programs: []planner.Program{{Name: "/usr/sbin/nginx", Use: "nginx -t and reload"}}}},
	}
	types := Types()
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			st := types[tt.typ]
			if st.Needs == nil {
				t.Fatalf("%s declares no needs", tt.typ)
			}
			if got := st.Needs(tt.args, tt.svc); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("needs:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestLocalMachine answers preflight's questions from this machine.
func TestLocalMachine(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	full := filepath.Join(dir, "full")
	os.Mkdir(empty, 0o755)
	os.MkdirAll(filepath.Join(full, "bin"), 0o755)
	os.WriteFile(filepath.Join(full, "bin", "run"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(full, "bin", "data"), []byte("x"), 0o644)
	m := LocalMachine{}

	for _, tt := range []struct {
		p    planner.Program
		want string // "" = runnable
	}{
		{planner.Program{Name: "sh"}, ""},
		{planner.Program{Name: "rollout-no-such-program"}, "not found on PATH"},
		{planner.Program{Name: "./bin/run", Dir: full}, ""},
		{planner.Program{Name: filepath.Join(full, "bin", "run")}, ""},
		{planner.Program{Name: "./bin/data", Dir: full}, "is not executable"},
		{planner.Program{Name: "./bin", Dir: full}, "is a directory"},
		{planner.Program{Name: "./bin/nope", Dir: full}, "no such file"},
	} {
		err := m.LookPath(tt.p)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("LookPath(%+v) = %v, want %q", tt.p, err, tt.want)
		}
	}
	for path, want := range map[string]struct{ exists, dir, empty bool }{
		empty:                             {true, true, true},
		full:                              {true, true, false},
		filepath.Join(full, "bin", "run"): {true, false, false},
		filepath.Join(dir, "nope"):        {false, false, false},
	} {
		info, err := m.Dir(path)
		if err != nil || info.Exists != want.exists || info.IsDir != want.dir || info.Empty != want.empty {
			t.Errorf("Dir(%s) = %+v, %v; want %+v", path, info, err, want)
		}
	}
	free, fs1, err := m.FreeSpace(empty)
	if err != nil || free <= 0 || fs1 == "" {
		t.Errorf("FreeSpace = %d, %q, %v", free, fs1, err)
	}
	if _, fs2, _ := m.FreeSpace(full); fs2 != fs1 {
		t.Errorf("two directories of one filesystem have ids %q and %q", fs1, fs2)
	}
	if _, err := m.Unit(t.Context(), "a.service"); !errors.Is(err, executor.ErrUnitsUnknown) {
		t.Errorf("Unit without systemd: %v, want ErrUnitsUnknown", err)
	}
}

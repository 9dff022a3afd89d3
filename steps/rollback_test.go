package steps

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/planner"
)

func TestChooseRollback(t *testing.T) {
	ids := []string{"20260101T000001Z-a", "20260101T000002Z-b", "20260101T000003Z-c", "20260101T000004Z-d"}
	setup := func(t *testing.T, current string, bad ...string) string {
		base := t.TempDir()
		for _, id := range ids {
			writeTree(t, releasePath(base, id), map[string]string{"V": id})
		}
		for _, id := range bad {
			if err := markBad(base, id, "test"); err != nil {
				t.Fatal(err)
			}
		}
		if current != "" {
			if err := switchCurrent(base, current); err != nil {
				t.Fatal(err)
			}
		}
		return base
	}
	tests := []struct {
		name, current, to string
		bad               []string
		want, err         string
	}{
		{"previous", ids[3], "", nil, ids[2], ""},
		{"skips bad", ids[3], "", []string{ids[2]}, ids[1], ""},
		{"never forward", ids[1], "", nil, ids[0], ""},
		{"nothing older", ids[0], "", nil, "", "no good release before"},
		{"all older bad", ids[2], "", []string{ids[0], ids[1]}, "", "no good release before"},
		{"no current", "", "", nil, "", "nothing is deployed"},
		{"--to exact", ids[3], ids[0], nil, ids[0], ""},
		{"--to prefix", ids[3], "20260101T000002", nil, ids[1], ""},
		{"--to forward", ids[0], ids[3], nil, ids[3], ""},
		{"--to ambiguous", ids[3], "20260101T", nil, "", "matches 4 releases"},
		{"--to unknown", ids[3], "2027", nil, "", "no release"},
		{"--to current", ids[3], ids[3], nil, "", "already current"},
		{"--to bad", ids[3], ids[1], []string{ids[1]}, "", "marked bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := setup(t, tt.current, tt.bad...)
			got, err := ChooseRollback(base, tt.to)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ChooseRollback = %+v, %v; want error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got.To != tt.want || got.From != tt.current {
				t.Fatalf("ChooseRollback = %+v, %v; want %s -> %s", got, err, tt.current, tt.want)
			}
		})
	}
}

func TestRollbackPipeline(t *testing.T) {
	st := func(name, typ string) *planner.Step {
		return &planner.Step{Name: name, Type: typ, Args: map[string]cty.Value{}}
	}
	target := RollbackTarget{Base: "/srv/a", From: "20260101T000002Z-b", To: "20260101T000001Z-a"}
	svc := &planner.Service{Name: "a", Steps: []*planner.Step{
		st("precheck", TypeHealthCheck), st("backup", TypeBackupUnit), st("deploy", TypeRelease),
		st("migrate", TypeExec), st("restart", TypeReloadOrRestart), st("verify", TypeHealthCheck), st("settle", TypeStabilize),
	}}
	if err := RollbackPipeline(svc, target); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range svc.Steps {
		got = append(got, s.Name+":"+s.Type)
	}
	if want := "switch:switch_release restart:reload_or_restart verify:health_check settle:stabilize"; strings.Join(got, " ") != want {
		t.Errorf("rollback pipeline %v, want %s", got, want)
	}
	if a := svc.Steps[0].Args; a["release"].AsString() != target.To || a["expect"].AsString() != target.From {
		t.Errorf("switch args %v", a)
	}
	// Preflight checks that the release gone back to is still there.
	if d := svc.Steps[0].Needs.Dirs; len(d) != 1 || d[0] != "/srv/a/releases/"+target.To {
		t.Errorf("switch needs dirs %v, want the release", d)
	}

	bare := &planner.Service{Name: "b", Steps: []*planner.Step{st("deploy", TypeRelease)}}
	if err := RollbackPipeline(bare, target); err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, s := range bare.Steps {
		got = append(got, s.Name+":"+s.Type)
	}
	if want := "switch:switch_release restart:restart verify:health_check"; strings.Join(got, " ") != want {
		t.Errorf("rollback pipeline without a restart %v, want %s", got, want)
	}
	// Every generated step builds.
	b := newScripted().builder()
	for _, s := range append([]*planner.Step{svc.Steps[0]}, bare.Steps...) {
		if _, err := b.build(svc, s); err != nil {
			t.Errorf("step %s: %v", s.Name, err)
		}
	}
}

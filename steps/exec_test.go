package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

func strList(ss ...string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vs := make([]cty.Value, len(ss))
	for i, s := range ss {
		vs[i] = cty.StringVal(s)
	}
	return cty.ListVal(vs)
}

func execStepWith(command []string, extra map[string]cty.Value) *planner.Step {
	args := map[string]cty.Value{
		"command":          strList(command...),
		"dir":              cty.NullVal(cty.String),
		"env":              cty.NullVal(cty.Map(cty.String)),
		"timeout":          cty.NullVal(cty.String),
		"rollback_command": cty.NullVal(cty.List(cty.String)),
	}
	for k, v := range extra {
		args[k] = v
	}
	return &planner.Step{Name: "migrate", Type: TypeExec, Args: args}
}

func TestExecDo(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		command []string
		extra   map[string]cty.Value
		wantErr string // "" = success
		wantLog string // a line the step logs
	}{
		{
			name:    "output lines are forwarded",
			command: []string{"sh", "-c", "echo one; echo two >&2"},
			wantLog: "one\ntwo",
		},
		{
			name:    "dir",
			command: []string{"pwd"},
			extra:   map[string]cty.Value{"dir": cty.StringVal(dir)},
			wantLog: dir,
		},
		{
			name:    "env is added to the environment",
			command: []string{"sh", "-c", `echo "$GREETING $PATH_SET"`},
			extra: map[string]cty.Value{"env": cty.MapVal(map[string]cty.Value{
				"GREETING": cty.StringVal("hello world; rm -rf /"), "PATH_SET": cty.StringVal("x")})},
			wantLog: "hello world; rm -rf / x",
		},
		{
			name:    "arguments are not shell words",
			command: []string{"echo", "$HOME", "a b", ";", "|"},
			wantLog: "$HOME a b ; |",
		},
		{
			name:    "exit status and last output",
			command: []string{"sh", "-c", "echo migrating; echo 'relation exists' >&2; exit 3"},
			wantErr: `command ["sh" "-c" "echo migrating; echo 'relation exists' >&2; exit 3"] exited with status 3; last output:` + "\nmigrating\nrelation exists",
		},
		{
			name:    "failure without output",
			command: []string{"false"},
			wantErr: `command ["false"] exited with status 1 (no output)`,
		},
		{
			name:    "timeout",
			command: []string{"sh", "-c", "echo started; sleep 30"},
			extra:   map[string]cty.Value{"timeout": cty.StringVal("200ms")},
			wantErr: "timed out after 200ms; last output:\nstarted",
		},
		{
			name:    "missing program",
			command: []string{"/nonexistent/prog"},
			wantErr: "no such file",
		},
		{
			name:    "missing dir",
			command: []string{"true"},
			extra:   map[string]cty.Value{"dir": cty.StringVal(filepath.Join(dir, "nope"))},
			wantErr: "no such file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(testService())
			step := mustBuild(t, newScripted().builder(), testService(), execStepWith(tt.command, tt.extra))
			_, err := step.Do(context.Background(), &env.Env)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Do error = %v, want it to contain %q", err, tt.wantErr)
			}
			if tt.wantLog != "" && !strings.Contains(env.output(), tt.wantLog) {
				t.Errorf("log = %q, want it to contain %q", env.output(), tt.wantLog)
			}
		})
	}
}

func TestExecUndo(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "rolled-back")
	tests := []struct {
		name         string
		rollback     []string
		wantDescribe string
		check        func(t *testing.T, err error)
	}{
		{
			name:         "without rollback_command it is irreversible",
			wantDescribe: `nothing: step "migrate" has no rollback_command (irreversible)`,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, executor.ErrIrreversible) {
					t.Fatalf("Undo error = %v, want it to wrap ErrIrreversible", err)
				}
				if want := "irreversible: migrate has no rollback_command"; err.Error() != want {
					t.Errorf("Undo error = %q, want %q", err, want)
				}
			},
		},
		{
			name:         "rollback_command runs",
			rollback:     []string{"touch", marker},
			wantDescribe: fmt.Sprintf(`run ["touch" %q]`, marker),
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Fatalf("Undo: %v", err)
				}
				if _, err := os.Stat(marker); err != nil {
					t.Errorf("rollback_command did not run: %v", err)
				}
			},
		},
		{
			name:         "failing rollback_command is an error",
			rollback:     []string{"false"},
			wantDescribe: `run ["false"]`,
			check: func(t *testing.T, err error) {
				if err == nil || errors.Is(err, executor.ErrIrreversible) {
					t.Fatalf("Undo error = %v, want a plain failure", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := map[string]cty.Value{}
			if tt.rollback != nil {
				extra["rollback_command"] = strList(tt.rollback...)
			}
			env := newTestEnv(testService())
			step := mustBuild(t, newScripted().builder(), testService(), execStepWith([]string{"true"}, extra))
			undo, err := step.Do(context.Background(), &env.Env)
			if err != nil {
				t.Fatal(err)
			}
			if undo.Describe() != tt.wantDescribe {
				t.Errorf("Describe = %q, want %q", undo.Describe(), tt.wantDescribe)
			}
			tt.check(t, undo.Undo(context.Background(), &env.Env))
		})
	}
}

func TestExecFailureStillReturnsUndo(t *testing.T) {
	// A failed migration may be half applied; its rollback must still run.
	env := newTestEnv(testService())
	step := mustBuild(t, newScripted().builder(), testService(),
		execStepWith([]string{"false"}, map[string]cty.Value{"rollback_command": strList("true")}))
	undo, err := step.Do(context.Background(), &env.Env)
	if err == nil || undo == nil {
		t.Fatalf("Do = %v, %v; want an error and an undo", undo, err)
	}
}

func TestOutputLogKeepsTail(t *testing.T) {
	var lines []string
	o := &outputLog{logf: func(l string) { lines = append(lines, l) }}
	big := strings.Repeat("x", 1000) + "\n"
	for i := 0; i < 100; i++ {
		fmt.Fprint(o, big)
	}
	fmt.Fprint(o, "last line\r\nno newline")
	o.flush()
	if len(o.tail) > outputCap {
		t.Errorf("tail holds %d bytes, cap is %d", len(o.tail), outputCap)
	}
	if got := o.lastLines(2); got != "last line\nno newline" {
		t.Errorf("lastLines = %q", got)
	}
	if len(lines) != 102 || lines[100] != "last line" || lines[101] != "no newline" {
		t.Errorf("forwarded %d lines, last %q", len(lines), lines[len(lines)-2:])
	}
}

package main

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/executor"
)

func testStreams() (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: &bytes.Buffer{}, Out: out, ErrOut: errOut, Getenv: func(string) string { return "" }}, out, errOut
}

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return -1
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     planFlags
		wantUser bool
		wantJSON bool
		wantCode int
	}{
		{
			name: "defaults",
			args: []string{"plans/platform.hcl"},
			want: planFlags{Parallel: 1},
		},
		{
			name: "repeated service keeps order",
			args: []string{"p.hcl", "--service", "sso.api", "--service", "merchant.api"},
			want: planFlags{Parallel: 1, Services: []string{"sso.api", "merchant.api"}},
		},
		{
			name: "deploy",
			args: []string{"p.hcl", "--deploy", "--deploy-path", "/tmp/d", "--skip-migrations", "--force", "--dry-run"},
			want: planFlags{Parallel: 1, Deploy: true, DeployPath: "/tmp/d", SkipMigrations: true, Force: true, DryRun: true},
		},
		{
			name: "parallel set",
			args: []string{"p.hcl", "--parallel", "0", "--var", "region=us", "--var", "x=a=b"},
			want: planFlags{Parallel: 0, ParallelSet: true, Vars: []string{"region=us", "x=a=b"}},
		},
		{
			name:     "user and json",
			args:     []string{"p.hcl", "--user", "--json"},
			want:     planFlags{Parallel: 1},
			wantUser: true, wantJSON: true,
		},
		{name: "deploy without path", args: []string{"p.hcl", "--deploy"}, wantCode: exitUsage},
		{name: "path without deploy", args: []string{"p.hcl", "--deploy-path", "/x"}, wantCode: exitUsage},
		{name: "negative parallel", args: []string{"p.hcl", "--parallel", "-1"}, wantCode: exitUsage},
		{name: "bad var", args: []string{"p.hcl", "--var", "novalue"}, wantCode: exitUsage},
		{name: "duplicate var", args: []string{"p.hcl", "--var", "a=1", "--var", "a=2"}, wantCode: exitUsage},
		{name: "no file", args: []string{}, wantCode: exitUsage},
		{name: "unknown flag", args: []string{"p.hcl", "--nope"}, wantCode: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _ := testStreams()
			var got *RunOptions
			cmd := NewCmdRun(ios, func(o *RunOptions) error { got = o; return nil })
			root := NewCmdRoot(ios)
			root.RemoveCommand(root.Commands()...)
			root.AddCommand(cmd)
			root.SetArgs(append([]string{"run"}, tt.args...))
			err := root.Execute()
			if code := exitCodeOrUsage(err); code != tt.wantCode {
				t.Fatalf("exit code = %d (%v), want %d", code, err, tt.wantCode)
			}
			if tt.wantCode != exitOK {
				return
			}
			if !reflect.DeepEqual(got.Flags, tt.want) {
				t.Errorf("flags = %+v\nwant    %+v", got.Flags, tt.want)
			}
			if got.User != tt.wantUser || got.JSON != tt.wantJSON {
				t.Errorf("user, json = %v, %v; want %v, %v", got.User, got.JSON, tt.wantUser, tt.wantJSON)
			}
		})
	}
}

// exitCodeOrUsage maps errors as Main does: cobra's own errors are usage.
func exitCodeOrUsage(err error) int {
	if code := exitCode(err); code != -1 {
		return code
	}
	return exitUsage
}

func TestParseVars(t *testing.T) {
	got, err := parseVars([]string{"region=us", "empty=", "eq=a=b"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"region": "us", "empty": "", "eq": "a=b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseVars = %v, want %v", got, want)
	}
}

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{
			name: "nearby changes share a hunk",
			a:    "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n",
			b:    "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n",
			want: "--- x.hcl\n+++ x.hcl (formatted)\n@@ -1,10 +1,11 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n i\n j\n+k\n",
		},
		{
			name: "distant changes get their own hunks",
			a:    "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
			b:    "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n",
			want: "--- x.hcl\n+++ x.hcl (formatted)\n@@ -1,3 +1,4 @@\n+0\n 1\n 2\n 3\n@@ -9,4 +10,3 @@\n 9\n 10\n 11\n-12\n",
		},
		{name: "equal", a: "x\n", b: "x\n", want: "--- x.hcl\n+++ x.hcl (formatted)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unifiedDiff("x.hcl", tt.a, tt.b); got != tt.want {
				t.Errorf("unifiedDiff:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestUnknownSubcommandFails: cobra checks subcommand names only at the
// root, so `rollout completion bogus` printed the help and exited 0.
func TestUnknownSubcommandFails(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"completion", "bogus"}, exitUsage, "rollout: unknown command \"bogus\" for `rollout completion`. Choose one of: bash, fish, powershell, zsh\n"},
		{[]string{"plan", "vaildate", "x.hcl"}, exitUsage, "rollout: unknown command \"vaildate\" for `rollout plan`. Did you mean \"validate\"? Choose one of: fmt, show, validate\n"},
		{[]string{"completion"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ios, _, errOut := testStreams()
			if code := Main(tt.args, ios); code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errOut)
			}
			if errOut.String() != tt.want {
				t.Errorf("stderr = %q, want %q", errOut, tt.want)
			}
		})
	}
}

// TestRunExitCodeWhenEventsWereLost: a run that lost events after its
// start never exits 0, and says so; a failed run keeps its own code.
func TestRunExitCodeWhenEventsWereLost(t *testing.T) {
	lost := &executor.EventsLogError{Err: errors.New("events log: 3 of 14 events were lost: write: no space left on device"), Started: true}
	tests := []struct {
		name string
		res  executor.Result
		err  error
		code int
		want string
	}{
		{"all well", executor.Result{RunID: "r", Succeeded: []string{"a"}}, nil, exitOK, ""},
		{"events lost", executor.Result{RunID: "r", Succeeded: []string{"a"}}, lost, exitFailed,
			"rollout: the events log is incomplete: events log: 3 of 14 events were lost: write: no space left on device\nrollout: the services are as reported above, but the run's record is incomplete; exit 1.\n"},
		{"events lost and a rollback failed", executor.Result{RunID: "r", Failed: []string{"a"}, RollbackFailed: []string{"a"}}, lost, exitRollbackFailed,
			"rollout: the events log is incomplete: events log: 3 of 14 events were lost: write: no space left on device\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			if code := runExitCode(&errOut, tt.res, tt.err); code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if errOut.String() != tt.want {
				t.Errorf("stderr = %q, want %q", errOut.String(), tt.want)
			}
		})
	}
}

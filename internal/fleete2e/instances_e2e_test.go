package fleete2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/fakehost"
)

// templateUnit is the template unit of TestTemplateInstancesOnHostsE2E,
// as a printf format.
const templateUnit = `[Service]\nType=exec\nExecStart=/bin/sleep 600\n`

// Instances of a template unit on every host of a service: each
// (instance, host) restarts on its own host, one at a time, with the
// instance and its port in its step arguments; events name both.
func TestTemplateInstancesOnHostsE2E(t *testing.T) {
	t.Parallel()
	f := &fleet{t: t, dir: t.TempDir()}
	f.events = filepath.Join(f.dir, "events.jsonl")
	for _, name := range []string{"inst1", "inst2"} {
		h := fakehost.Start(t, name)
		f.hosts = append(f.hosts, h)
		h.MustRun(t, fmt.Sprintf("mkdir -p /srv/w && printf '%s' >/srv/cfg/systemd/user/w@.service && "+
			"systemctl --user daemon-reload && systemctl --user start w@a.service w@b.service", templateUnit))
	}
	var b strings.Builder
	for _, h := range f.hosts {
		b.WriteString(h.HCL())
	}
	b.WriteString(`
pipeline "default" {
  step "exec" "mark" {
    command = ["sh", "-c", "echo \"$1\" >>/srv/w/marks", "mark", "${service.instance} ${service.port} on ${host.name}"]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}

service "w" {
  unit      = "w@.service"
  instances = ["a", "b"]
  port      = 7000 + service.instance_index
  hosts     = ["inst1", "inst2"]
}
`)
	plan := filepath.Join(f.dir, "instances.hcl")
	writeFile(t, plan, b.String())

	ids := func() map[string]string {
		out := map[string]string{}
		for _, h := range f.hosts {
			for _, in := range []string{"a", "b"} {
				out[in+"@"+h.Name] = lastLine(h.MustRun(t, "systemctl --user show -p InvocationID --value w@"+in+".service"))
			}
		}
		return out
	}
	before := ids()
	r := f.rollout("run", plan, "--user", "--events", f.events, "--no-tty")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	after := ids()
	for k, id := range before {
		if id == "" || after[k] == id {
			t.Errorf("w@%s: InvocationID %q → %q, want a new one", k, id, after[k])
		}
	}
	for _, h := range f.hosts {
		var got []string
		for _, line := range strings.Split(h.MustRun(t, "cat /srv/w/marks"), "\n") {
			if strings.Contains(line, " on ") { // not what the host's login shell may print
				got = append(got, line)
			}
		}
		want := []string{"a 7000 on " + h.Name, "b 7001 on " + h.Name}
		if !slices.Equal(got, want) {
			t.Errorf("%s marks %q, want %q (each instance's step ran on its own host)", h.Name, got, want)
		}
	}
	var done []string
	inFlight, most := 0, 0
	for _, e := range f.readEvents() {
		switch e.Event {
		case executor.ServiceRestartStart:
			inFlight++
			most = max(most, inFlight)
		case executor.ServiceRestartSuccess:
			inFlight--
			done = append(done, fmt.Sprintf("%s(%s,%s)", e.Service, e.Instance, e.Host))
		}
	}
	if want := []string{"w:a@inst1(a,inst1)", "w:b@inst1(b,inst1)", "w:a@inst2(a,inst2)", "w:b@inst2(b,inst2)"}; !slices.Equal(done, want) {
		t.Errorf("restarted %q, want %q", done, want)
	}
	if most != 1 {
		t.Errorf("%d instances restarted at once; instances go one at a time by default", most)
	}
}

// lastLine is the last non-empty line of out: a command's answer after
// whatever the host's login shell printed first (a pyenv rehash warning).
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

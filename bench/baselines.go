package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rollout-sh/rollout/internal/systemdtest"
)

// poll is the baselines' pause between two health probes: the same as
// rollout's during the first seconds of a check (fastPollMax in
// steps/health.go), so that no side wins by polling more often.
const poll = 10 * time.Millisecond

// curlProbe is one health probe in the shell baselines.
const curlProbe = `curl -fsS -o /dev/null --max-time 2`

// shellLoop is the restart script an operator would write: in dependency
// order, restart, poll health with curl, settle.
func shellLoop(svcs []*benchService) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\nset -euo pipefail\n")
	fmt.Fprintf(&b, "settle=%g\n", settle.Seconds())
	b.WriteString("restart() {\n  systemctl --user restart \"$1\"\n")
	fmt.Fprintf(&b, "  until %s \"$2\"; do sleep %g; done\n", curlProbe, poll.Seconds())
	b.WriteString("  sleep \"$settle\"\n}\n")
	for _, s := range svcs {
		fmt.Fprintf(&b, "restart %s %s\n", s.Unit, s.url("/health"))
	}
	return b.String()
}

// levelScript is what a careful operator would script for a DAG: level by
// level (dependency depth), one `systemctl --user restart` of the whole
// level (systemd runs the jobs in parallel and systemctl waits for them
// all), then every service of the level polled at once, then the settle.
func levelScript(svcs []*benchService) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\nset -euo pipefail\n")
	fmt.Fprintf(&b, "settle=%g\n", settle.Seconds())
	b.WriteString("wait_healthy() {\n  local pids=()\n  for url in \"$@\"; do\n")
	fmt.Fprintf(&b, "    ( until %s \"$url\"; do sleep %g; done ) &\n", curlProbe, poll.Seconds())
	b.WriteString("    pids+=($!)\n  done\n  for p in \"${pids[@]}\"; do wait \"$p\"; done\n}\n")
	for _, level := range levels(svcs) {
		var units, urls []string
		for _, s := range level {
			units = append(units, s.Unit)
			urls = append(urls, s.url("/health"))
		}
		fmt.Fprintf(&b, "systemctl --user restart %s\n", strings.Join(units, " "))
		fmt.Fprintf(&b, "wait_healthy %s\n", strings.Join(urls, " "))
		b.WriteString("sleep \"$settle\"\n")
	}
	return b.String()
}

// ansibleAvailable says whether ansible-playbook can be run.
func ansibleAvailable() (string, bool) {
	path, err := exec.LookPath("ansible-playbook")
	return path, err == nil
}

// writeAnsible writes the most favourable honest Ansible setup for the
// same job into dir: every service a host on the local connection, one
// play per dependency level, strategy free, as many forks as the widest
// level, no fact gathering, pipelining. Each host restarts its unit
// (ansible.builtin.systemd, scope user), polls /health with
// ansible.builtin.uri without a pause between retries (each retry is a
// module run, much slower than rollout's probe interval anyway), then
// settles with a raw `sleep` (pause cannot wait less than a second). It
// returns the playbook's path.
func writeAnsible(dir string, m *systemdtest.Manager, svcs []*benchService) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lv := levels(svcs)
	forks := 0
	var inv strings.Builder
	for i, level := range lv {
		forks = max(forks, len(level))
		fmt.Fprintf(&inv, "[level%d]\n", i+1)
		for _, s := range level {
			fmt.Fprintf(&inv, "%s unit=%s url=%s\n", strings.ReplaceAll(s.Name, ".", "_"), s.Unit, s.url("/health"))
		}
	}
	inv.WriteString("\n[all:vars]\nansible_connection=local\nansible_python_interpreter=/usr/bin/python3\n")

	cfg := fmt.Sprintf(`[defaults]
forks = %d
strategy = free
gathering = explicit
host_key_checking = False
retry_files_enabled = False
interpreter_python = /usr/bin/python3
inventory = inventory.ini

[connection]
pipelining = True
`, forks)

	var env strings.Builder
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&env, "    %s: %q\n", k, v)
	}
	var pb strings.Builder
	for i := range lv {
		fmt.Fprintf(&pb, `- name: level %d
  hosts: level%d
  gather_facts: false
  strategy: free
  environment:
%s  tasks:
    - name: restart
      ansible.builtin.systemd:
        name: "{{ unit }}"
        state: restarted
        scope: user
    - name: verify health
      ansible.builtin.uri:
        url: "{{ url }}"
      register: health
      until: health.status == 200
      retries: 1000
      delay: 0
    - name: settle
      ansible.builtin.raw: sleep %g
`, i+1, i+1, env.String(), settle.Seconds())
	}
	for name, content := range map[string]string{"inventory.ini": inv.String(), "ansible.cfg": cfg, "restart.yml": pb.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "restart.yml"), nil
}

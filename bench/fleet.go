package main

// The fleet benchmark (go run ./bench -fleet): 3 hosts × 30 instances made
// with internal/fakehost (real sshd, real systemd --user managers), against
// the same 30 services on a local manager. It reports the fixed cost of a
// host's first connection, the added cost of a remote restart over a local
// one, and the wall of the whole fleet against its measured bound.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/fakehost"
	"github.com/rollout-sh/rollout/internal/systemdtest"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

const fleetPerHost = 30

func fleetUnitText() string {
	// No start rate limit: the rounds restart each unit more than
	// systemd's default 5 times in 10 s.
	return "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=exec\nExecStart=/bin/sleep 3600\n"
}

func fleetBench(rounds int) error {
	work, err := os.MkdirTemp("", "rollout-fleet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rollout, err := goBuild(work, "rollout", "github.com/rollout-sh/rollout/cmd/rollout")
	if err != nil {
		return err
	}
	m, stop, err := systemdtest.StartMain()
	if err != nil {
		return fmt.Errorf("starting a systemd --user manager: %w", err)
	}
	defer stop()
	var hosts []*fakehost.Host
	defer func() {
		for _, h := range hosts {
			h.Stop()
		}
	}()
	for _, name := range []string{"bench1", "bench2", "bench3"} {
		h, err := fakehost.StartHost(name)
		if err != nil {
			return fmt.Errorf("fakehost %s: %w", name, err)
		}
		hosts = append(hosts, h)
	}
	// The same 30 units on every host and on the local manager.
	var names []string
	for i := range fleetPerHost {
		names = append(names, fmt.Sprintf("fb%02d", i))
	}
	var script strings.Builder
	for _, n := range names {
		fmt.Fprintf(&script, "printf '%s' >/srv/cfg/systemd/user/%s.service\n", strings.ReplaceAll(fleetUnitText(), "\n", `\n`), n)
	}
	script.WriteString("systemctl --user daemon-reload && systemctl --user start " + strings.Join(names, ".service ") + ".service")
	for _, h := range hosts {
		if out, err := h.Run(script.String()); err != nil {
			return fmt.Errorf("units on %s: %v: %s", h.Name, err, out)
		}
	}
	for _, n := range names {
		writeFile(filepath.Join(m.UnitDir, n+".service"), fleetUnitText())
	}
	ctx := context.Background()
	conn, err := m.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.ReloadContext(ctx)
	for _, n := range names {
		ch := make(chan string, 1)
		if _, err := conn.StartUnitContext(ctx, n+".service", "replace", ch); err != nil {
			return err
		}
		<-ch
	}

	// (a) A host's first connection: the ssh master, then systemd over
	// the forwarded bus socket (two go-systemd connections, auth, Hello).
	// Each host alone, then all at once, as a run connects them.
	hostOf := func(h *fakehost.Host) *planner.Host {
		return &planner.Host{Name: h.Name, Address: "127.0.0.1", User: "root", Port: h.Port, SSHArgs: h.SSHArgs(), SystemdBus: "unix:path=/srv/run/bus"}
	}
	var alone []time.Duration
	for _, h := range hosts {
		set, err := steps.NewHostSet(ctx, steps.SSHConfig{})
		if err != nil {
			return err
		}
		host, _ := set.Get(hostOf(h))
		t0 := time.Now()
		_, err = host.Systemd().Status(ctx, "fb00.service")
		alone = append(alone, time.Since(t0))
		set.Close()
		if err != nil {
			return fmt.Errorf("first connection to %s: %w", h.Name, err)
		}
	}
	first := make([]time.Duration, len(hosts))
	var locked time.Duration // every host connected and locked
	{
		set, err := steps.NewHostSet(ctx, steps.SSHConfig{})
		if err != nil {
			return err
		}
		errs := make([]error, len(hosts)+1)
		var phs []*planner.Host
		var wg sync.WaitGroup
		t0 := time.Now()
		for i, h := range hosts {
			ph := hostOf(h)
			phs = append(phs, ph)
			host, _ := set.Get(ph)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = host.Systemd().Status(ctx, "fb00.service")
				first[i] = time.Since(t0)
			}()
		}
		// A run also locks every host before its first restart: the
		// lock is an ssh session of its own, started once the master
		// is up, alongside the systemd connection.
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := set.Lock(ctx, phs, executor.LockHolder{RunID: "bench", Plan: "fleet", PID: os.Getpid(), Started: time.Now()}, 0, nil)
			locked = time.Since(t0)
			errs[len(hosts)] = err
			if err == nil {
				release()
			}
		}()
		wg.Wait()
		set.Close()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("first connections: %w", err)
		}
	}

	pipeline := `pipeline "default" {
  step "restart" "restart" {}
  step "health_check" "verify" {}
}
`
	var local, fleet strings.Builder
	local.WriteString(pipeline)
	fleet.WriteString(pipeline)
	for _, h := range hosts {
		fleet.WriteString(h.HCL("bench"))
	}
	for _, n := range names {
		fmt.Fprintf(&local, "service %q {\n  unit = %q\n}\n", n, n+".service")
		fmt.Fprintf(&fleet, "service %q {\n  unit      = %q\n  host_tags = [\"bench\"]\n}\n", n, n+".service")
	}
	localPlan := filepath.Join(work, "local.hcl")
	fleetPlan := filepath.Join(work, "fleet.hcl")
	writeFile(localPlan, local.String())
	writeFile(fleetPlan, fleet.String())

	// busy is the machine's CPU time over the last run, every process
	// (rollout, ssh, the hosts' sshd, bridges, buses and managers).
	var busy time.Duration
	run := func(plan, events string, args ...string) (time.Duration, error) {
		before, procs := machineBusy(), procCPU()
		d, err := timed(func() error {
			return runEnv(m, rollout, append([]string{"run", plan, "--user", "--no-tty", "--events", events}, args...)...)
		})
		busy = machineBusy() - before
		// BENCH_PROCS=1: which processes took the CPU (a diagnostic).
		if os.Getenv("BENCH_PROCS") != "" {
			after := procCPU()
			for k, v := range after {
				if d := v - procs[k]; d >= 20*time.Millisecond {
					fmt.Fprintf(os.Stderr, "  cpu %-40s %s\n", k, d)
				}
			}
		}
		return d, err
	}
	// (b) One restart at a time, local and remote: the restart step's
	// own duration, per instance.
	localEv := filepath.Join(work, "local.jsonl")
	if _, err := run(localPlan, localEv, "--parallel", "1"); err != nil {
		return err
	}
	seqEv := filepath.Join(work, "fleet-seq.jsonl")
	seqWall, err := run(fleetPlan, seqEv, "--parallel", "1")
	if err != nil {
		return err
	}
	seqBusy := busy
	localSteps, err := stepDurations(localEv)
	if err != nil {
		return err
	}
	remoteSteps, err := stepDurations(seqEv)
	if err != nil {
		return err
	}
	// (c) The whole fleet, three at a time: one per host; and, as the
	// reference of what this machine allows, three independent
	// controllers at once, one per host (`--host`, each with a state
	// directory and lock of its own). Interleaved rounds, medians.
	type parRound struct {
		wall, startup, restarts, busy time.Duration
	}
	var pars []parRound
	var indeps, floors []time.Duration
	for round := range rounds {
		parEv := filepath.Join(work, fmt.Sprintf("fleet-par-%d.jsonl", round))
		parStart := time.Now()
		parWall, err := run(fleetPlan, parEv, "--parallel", "3")
		if err != nil {
			return err
		}
		r := parRound{wall: parWall, busy: busy}
		// Where the wall goes: before RUN_START (start, compile, ssh
		// masters, host locks, preflight over ssh), the restarts, after
		// the run's end.
		if r.startup, r.restarts, err = runPhases(parEv, parStart); err != nil {
			return err
		}
		pars = append(pars, r)
		if keep := os.Getenv("BENCH_KEEP"); keep != "" {
			for _, f := range []string{seqEv, parEv, localEv} {
				if data, err := os.ReadFile(f); err == nil {
					os.WriteFile(filepath.Join(keep, filepath.Base(f)), data, 0o644)
				}
			}
		}
		d, err := independentRuns(m, rollout, fleetPlan, work, round, hosts)
		if err != nil {
			return err
		}
		indeps = append(indeps, d)
		f, err := systemctlFloor(hosts, names)
		if err != nil {
			return err
		}
		floors = append(floors, f)
	}
	slices.SortFunc(pars, func(a, b parRound) int { return cmp.Compare(a.wall, b.wall) })
	med := pars[len(pars)/2]
	parWall, startup, restarts, parBusy := med.wall, med.startup, med.restarts, med.busy
	indep := percentile(indeps, 50)
	floor := percentile(floors, 50)
	// The bound: the slowest host's first connection and lock (all hosts
	// at once, as a run does) plus its instances' own
	// pipelines one after the other (the sequential run measured them),
	// since one host's instances share one connection and the scheduler
	// runs one instance per host at a time here.
	perHost := map[string]time.Duration{}
	for inst, d := range remoteSteps.total {
		host := inst[strings.LastIndexByte(inst, '@')+1:]
		perHost[host] += d
	}
	var bound time.Duration
	for i, h := range hosts {
		bound = max(bound, max(first[i], locked)+perHost[h.Name])
	}

	lr, rr := remoteSteps.restart, localSteps.restart
	fmt.Printf("Fleet: %d hosts (fakehost: sshd + systemd --user each) × %d instances; local: the same %d units on a local manager\n\n", len(hosts), fleetPerHost, fleetPerHost)
	fmt.Printf("%-62s %10s\n", "measure", "value")
	row := func(name string, d time.Duration) { fmt.Printf("%-62s %10s\n", name, d.Round(100*time.Microsecond)) }
	for i, h := range hosts {
		row(fmt.Sprintf("(a) first connection to %s, alone / all hosts at once", h.Name), alone[i])
		row("", first[i])
	}
	row("(a) every host connected and locked, all at once", max(locked, slices.Max(first)))
	row("restart step, local, median", percentile(rr, 50))
	row("restart step, remote, median", percentile(lr, 50))
	row("(b) added cost per remote restart, median (target ≤ 15ms)", percentile(lr, 50)-percentile(rr, 50))
	row("restart step, remote, p90", percentile(lr, 90))
	row(fmt.Sprintf("fleet, --parallel 1 (%d instances)", len(hosts)*fleetPerHost), seqWall)
	row(fmt.Sprintf("fleet, --parallel 3 (median of %d)", rounds), parWall)
	row("bound: host's first connection and lock + its pipelines", bound)
	fmt.Printf("%-62s %10.3f  (target ≤ 1.10)\n", "(c) --parallel 3 / bound", float64(parWall)/float64(bound))
	row("  of which: start to RUN_START (connect, lock, preflight)", startup)
	row("  of which: RUN_START to the run's end (the restarts)", restarts)
	row("  of which: after the run's end (unlock, close, exit)", parWall-startup-restarts)
	row(fmt.Sprintf("%d single-host controllers at once, slowest (median of %d)", len(hosts), rounds), indep)
	fmt.Printf("%-62s %10.3f\n", "--parallel 3 / independent controllers", float64(parWall)/float64(indep))
	row(fmt.Sprintf("floor: one ssh + systemctl loop per host, all at once (median of %d)", rounds), floor)
	fmt.Printf("%-62s %10.3f\n", "--parallel 3 / floor", float64(parWall)/float64(floor))
	fmt.Printf("%-62s %10.3f\n", "floor / bound", float64(floor)/float64(bound))
	row(fmt.Sprintf("machine CPU busy, --parallel 1 (all processes, %d cores)", runtime.NumCPU()), seqBusy)
	row("machine CPU busy, --parallel 3", parBusy)

	// (d) Ansible on the same fleet, in the same run.
	ansible, ok := ansibleAvailable()
	if !ok {
		fmt.Println("(d) Ansible: not measured (ansible-playbook is not installed; Debian: apt-get install -y ansible-core).")
		return nil
	}
	playbook, err := writeFleetAnsible(filepath.Join(work, "ansible"), hosts, names)
	if err != nil {
		return err
	}
	adir := filepath.Dir(playbook)
	ansibleWall, err := timed(func() error {
		cmd := exec.Command(ansible, "-i", filepath.Join(adir, "inventory.ini"), playbook)
		cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(adir, "ansible.cfg"))
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("ansible-playbook: %w\n%s", err, out.tail())
		}
		return nil
	})
	if err != nil {
		return err
	}
	row("(d) Ansible, same fleet (forks 3, free, pipelining, ControlPersist)", ansibleWall)
	fmt.Printf("%-62s %10.2f\n", "(d) Ansible / rollout --parallel 3", float64(ansibleWall)/float64(parWall))
	return nil
}

// writeFleetAnsible writes the most favourable honest Ansible setup for the
// fleet's job: the three hosts over ssh with connection sharing
// (ControlMaster=auto, ControlPersist=60s, Ansible's defaults, kept),
// pipelining (no temporary files per task), forks = one per host,
// strategy free (no host waits for another), no fact gathering. Each host
// restarts its 30 units one after the other (ansible.builtin.systemd,
// scope user, which waits for the job), then checks once that all are
// active: a single `systemctl --user is-active` for the 30, where rollout
// verifies each instance on its own.
func writeFleetAnsible(dir string, hosts []*fakehost.Host, units []string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var inv strings.Builder
	inv.WriteString("[fleet]\n")
	for _, h := range hosts {
		fmt.Fprintf(&inv, "%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_ssh_private_key_file=%s\n", h.Name, h.Port, h.Key)
	}
	inv.WriteString("\n[fleet:vars]\nansible_python_interpreter=/usr/bin/python3\n")
	cfg := fmt.Sprintf(`[defaults]
forks = %d
strategy = free
gathering = explicit
host_key_checking = False
retry_files_enabled = False
interpreter_python = /usr/bin/python3

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
control_path_dir = %s
`, len(hosts), filepath.Join(dir, "cp"))
	list := make([]string, len(units))
	for i, u := range units {
		list[i] = fmt.Sprintf("%q", u+".service")
	}
	pb := fmt.Sprintf(`- name: restart the fleet
  hosts: fleet
  gather_facts: false
  strategy: free
  tasks:
    - name: restart
      ansible.builtin.systemd:
        name: "{{ item }}"
        state: restarted
        scope: user
      loop: [%s]
    - name: verify
      ansible.builtin.command: systemctl --user is-active %s
      changed_when: false
`, strings.Join(list, ", "), strings.Join(strings.Fields(strings.NewReplacer(`"`, "").Replace(strings.Join(list, " "))), " "))
	for name, content := range map[string]string{"inventory.ini": inv.String(), "ansible.cfg": cfg, "restart.yml": pb} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "restart.yml"), nil
}

type stepFigures struct {
	restart []time.Duration          // each restart step
	total   map[string]time.Duration // per instance: SERVICE_RESTART_SUCCESS duration
}

// stepDurations reads the restart steps' durations and each instance's
// whole pipeline from an events log.
func stepDurations(path string) (stepFigures, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return stepFigures{}, err
	}
	evs, _, err := executor.ReadEvents(bytes.NewReader(data))
	if err != nil {
		return stepFigures{}, err
	}
	f := stepFigures{total: map[string]time.Duration{}}
	for _, e := range evs {
		switch {
		case e.Event == executor.StepSuccess && e.Step == "restart" && e.Phase == "":
			f.restart = append(f.restart, time.Duration(e.DurationMS)*time.Millisecond)
		case e.Event == executor.ServiceRestartSuccess:
			f.total[e.Service] = time.Duration(e.DurationMS) * time.Millisecond
		}
	}
	if len(f.restart) == 0 {
		return f, fmt.Errorf("%s: no restart steps", path)
	}
	return f, nil
}

// runEnv runs a command with the manager's environment, its output kept
// for the error.
func runEnv(m *systemdtest.Manager, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), m.Env()...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out.tail())
	}
	return nil
}

// runPhases reads from an events log how long the run took to reach
// RUN_START after start, and from RUN_START to its RUN_SUCCESS or
// RUN_FAILED.
func runPhases(path string, start time.Time) (startup, restarts time.Duration, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	evs, _, err := executor.ReadEvents(bytes.NewReader(data))
	if err != nil {
		return 0, 0, err
	}
	var begin, end time.Time
	for _, e := range evs {
		switch e.Event {
		case executor.RunStart:
			begin = e.Time
		case executor.RunSuccess, executor.RunFailed:
			end = e.Time
		}
	}
	if begin.IsZero() || end.IsZero() {
		return 0, 0, fmt.Errorf("%s: no RUN_START or end", path)
	}
	return begin.Sub(start), end.Sub(begin), nil
}

// machineBusy is the CPU time the whole machine has spent outside idle
// and iowait since boot, from /proc/stat (0 where it cannot be read).
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ = 100
}

// procCPU is each live process's CPU time, by pid and name.
func procCPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range processes() {
		out[fmt.Sprintf("%d %s", p.pid, p.comm)] = p.cpu
	}
	return out
}

// independentRuns starts one controller per host at once, each
// restarting that host's instances one at a time (`--host`), with a
// controller state (lock, journals) of its own, and returns the slowest
// one's wall: what this machine allows when nothing coordinates the
// hosts.
func independentRuns(m *systemdtest.Manager, rollout, plan, work string, round int, hosts []*fakehost.Host) (time.Duration, error) {
	walls := make([]time.Duration, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		state := filepath.Join(work, fmt.Sprintf("indep-%d-%s", round, h.Name))
		if err := os.MkdirAll(state, 0o755); err != nil {
			return 0, err
		}
		cmd := exec.Command(rollout, "run", plan, "--user", "--no-tty", "--host", h.Name, "--parallel", "1",
			"--events", filepath.Join(state, "events.jsonl"))
		// The plan has no local service, so no local manager is
		// reached; the bus address only places the controller's lock.
		cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(state, "bus"), "XDG_STATE_HOME="+state)
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("rollout --host %s: %w\n%s", h.Name, err, out.tail())
			}
			walls[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return slices.Max(walls), nil
}

// systemctlFloor is the least this machine takes to restart every
// host's units one after the other, all hosts at once, with nothing
// checked: per host, one ssh session (a connection of its own) running
// `systemctl --user restart` for each unit in turn. It returns the
// slowest host's wall.
func systemctlFloor(hosts []*fakehost.Host, names []string) (time.Duration, error) {
	var line strings.Builder
	for _, n := range names {
		fmt.Fprintf(&line, "systemctl --user restart %s.service || exit 1\n", n)
	}
	walls := make([]time.Duration, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if out, err := h.Run(line.String()); err != nil {
				errs[i] = fmt.Errorf("systemctl loop on %s: %w: %s", h.Name, err, out)
			}
			walls[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return slices.Max(walls), nil
}

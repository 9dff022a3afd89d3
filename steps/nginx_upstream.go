package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// nginx_upstream takes a server out of an nginx upstream before its
// service stops (state = "down") or puts it back after it was verified
// (state = "up"). It rewrites the upstream file atomically (a temporary
// file renamed over it, mode and owner kept), tests the configuration
// with `nginx -t`, reloads gracefully with `nginx -s reload`, and waits
// until nginx's old workers have finished their requests and exited: only
// then is no request on its way to the server. Its undo sets the server
// back the way it was, with the same test, reload and wait; the undo of
// "down" runs after the rollback has the service back.
func nginxUpstreamStepType() planner.StepType {
	return planner.StepType{
		Name: TypeNginxUpstream,
		Spec: hcldec.ObjectSpec{
			"file":     &hcldec.AttrSpec{Name: "file", Type: cty.String, Required: true},
			"server":   &hcldec.AttrSpec{Name: "server", Type: cty.String, Required: true},
			"state":    &hcldec.AttrSpec{Name: "state", Type: cty.String, Required: true},
			"upstream": &hcldec.AttrSpec{Name: "upstream", Type: cty.String},
			"nginx":    &hcldec.AttrSpec{Name: "nginx", Type: cty.String},
			"conf":     &hcldec.AttrSpec{Name: "conf", Type: cty.String},
			"pid_file": &hcldec.AttrSpec{Name: "pid_file", Type: cty.String},
			"timeout":  &hcldec.AttrSpec{Name: "timeout", Type: cty.String},
			// allow_last lets "down" take out the last server of an
			// upstream that is in traffic: an outage, refused unless
			// asked for.
			"allow_last": &hcldec.AttrSpec{Name: "allow_last", Type: cty.Bool},
		},
		Rollback:   "sets the server back as it was, tests, reloads (after the service is back for \"down\")",
		Validate:   validateAll(validateNginxUpstream, validateDurations("timeout")),
		Estimate:   timeoutEstimate(defaultNginxTimeout),
		Traffic:    nginxTraffic,
		NotOnHosts: notOnHostsLB,
	}
}

// nginxTraffic is the planner's view of the step: "down" takes the server
// out, "up" puts it back.
func nginxTraffic(args map[string]cty.Value) (planner.TrafficMark, bool) {
	file, ok1 := knownString(args, "file")
	server, ok2 := knownString(args, "server")
	state, ok3 := knownString(args, "state")
	if !ok1 || !ok2 || !ok3 {
		return planner.TrafficMark{}, false
	}
	upstream, _ := knownString(args, "upstream")
	return planner.TrafficMark{
		Key:  fmt.Sprintf("nginx %s %s %s", file, upstream, server),
		Out:  state == "down",
		Hint: fmt.Sprintf("Add an nginx_upstream step with the same file and server (%s) and state = \"up\" after the health check that verifies the restart.", server),
	}, true
}

// defaultNginxTimeout bounds the wait for nginx's old workers to finish
// their requests after a reload.
const defaultNginxTimeout = 30 * time.Second

// defaultNginxPidFile is where Debian's and upstream's nginx.conf put it.
const defaultNginxPidFile = "/run/nginx.pid"

func validateNginxUpstream(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if s, ok := knownString(args, "state"); ok && s != "down" && s != "up" {
		diags = append(diags, invalidArg(rng("state"), "Invalid upstream state",
			fmt.Sprintf("The state argument must be \"down\" (take the server out of traffic) or \"up\" (put it back), but it is %q.", s)))
	}
	for _, name := range []string{"file", "conf", "pid_file"} {
		if s, ok := knownString(args, name); ok && !filepath.IsAbs(s) {
			diags = append(diags, invalidArg(rng(name), "Relative path",
				fmt.Sprintf("The %s argument must be an absolute path, but it is %q: nginx and rollout would resolve a relative one from different directories. Give the full path.", name, s)))
		}
	}
	if s, ok := knownString(args, "server"); ok && (s == "" || strings.ContainsAny(s, " \t\r\n;{}#")) {
		diags = append(diags, invalidArg(rng("server"), "Invalid upstream server",
			fmt.Sprintf("The server argument must be the address of a server line as the upstream file spells it (such as \"127.0.0.1:8002\" or \"unix:/run/api.sock\"), but it is %q.", s)))
	}
	if s, ok := knownString(args, "nginx"); ok && s == "" {
		diags = append(diags, invalidArg(rng("nginx"), "Empty command",
			"The nginx argument names the nginx program and must not be empty. Leave it out to use \"nginx\" from PATH."))
	}
	return diags
}

type nginxUpstreamStep struct {
	nginxTarget
	down      bool
	allowLast bool
}

// nginxTarget is one server in one nginx's upstream file.
type nginxTarget struct {
	file, server, upstream string
	nginx, conf, pidFile   string
	timeout                time.Duration
}

func (b *builder) buildNginxUpstream(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &nginxUpstreamStep{nginxTarget: nginxTarget{nginx: "nginx", pidFile: defaultNginxPidFile, timeout: defaultNginxTimeout}}
	s.file, _ = r.str("file")
	s.server, _ = r.str("server")
	s.upstream, _ = r.str("upstream")
	if v, ok := r.str("nginx"); ok && v != "" {
		s.nginx = v
	}
	s.conf, _ = r.str("conf")
	if v, ok := r.str("pid_file"); ok && v != "" {
		s.pidFile = v
	}
	if d, ok := r.duration("timeout"); ok {
		s.timeout = d
	}
	s.allowLast, _ = r.boolean("allow_last")
	state, _ := r.str("state")
	switch state {
	case "down":
		s.down = true
	case "up":
	default:
		return nil, fmt.Errorf("argument \"state\": %q is neither \"down\" nor \"up\"", state)
	}
	if s.file == "" || s.server == "" {
		return nil, errors.New("file and server must not be empty")
	}
	return s, nil
}

func (t nginxTarget) String() string {
	if t.upstream != "" {
		return fmt.Sprintf("server %s of upstream %s in %s", t.server, t.upstream, t.file)
	}
	return fmt.Sprintf("server %s in %s", t.server, t.file)
}

func (s *nginxUpstreamStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	lock := fileLock(s.file)
	lock.Lock()
	defer lock.Unlock()

	text, mode, err := readUpstreamFile(s.file)
	if err != nil {
		return nil, err
	}
	conf, err := parseNginxUpstreams(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.file, err)
	}
	mine := conf.find(s.upstream, s.server)
	if len(mine) == 0 {
		return nil, fmt.Errorf("no %s (its upstreams: %s)", s.nginxTarget, conf.describe())
	}
	// was records each matching line's down flag, for the undo.
	was := make([]bool, len(mine))
	changed := false
	for i, k := range mine {
		was[i] = conf.servers[k].isDown()
		changed = changed || was[i] != s.down
	}
	if !changed {
		logf(env, "%s is already %s", s.nginxTarget, map[bool]string{true: "down", false: "up"}[s.down])
		return nil, nil
	}
	if s.down && !s.allowLast {
		if err := conf.checkOthersUp(mine, s.nginxTarget); err != nil {
			return nil, err
		}
	}
	next := conf.withDown(mine, func(int) bool { return s.down })
	if err := s.apply(ctx, env, text, next, mode); err != nil {
		return nil, err
	}
	restore := &nginxRestore{nginxTarget: s.nginxTarget, was: was}
	if s.down {
		return &nginxReadmit{restore}, nil
	}
	return restore, nil
}

// apply writes next over the file, tests the configuration and reloads.
// A configuration nginx refuses is put back at once, so a failed step
// leaves nothing to undo; a failed reload or wait leaves the new file,
// and the caller's undo restores it.
func (t nginxTarget) apply(ctx context.Context, env *executor.Env, old, next string, mode os.FileMode) error {
	if err := writeFileAtomic(t.file, next, mode); err != nil {
		return err
	}
	if err := t.run(ctx, env, "-t"); err != nil {
		if werr := writeFileAtomic(t.file, old, mode); werr != nil {
			return fmt.Errorf("nginx refused the new upstream file: %v; putting the old one back failed too: %v", err, werr)
		}
		return fmt.Errorf("nginx refused the new upstream file, the old one is back: %w", err)
	}
	return t.reload(ctx, env)
}

// reload reloads nginx gracefully and waits until its old workers, which
// finish the requests they hold on the old configuration, have exited.
// `nginx -s reload` only signals the master, so without the wait a server
// taken out could still be receiving requests when its service stops.
func (t nginxTarget) reload(ctx context.Context, env *executor.Env) error {
	master, err := readPidFile(t.pidFile)
	if err != nil {
		return fmt.Errorf("nginx's pid file: %w (set pid_file to the `pid` of nginx.conf)", err)
	}
	old := childPIDs(master)
	if err := t.run(ctx, env, "-s", "reload"); err != nil {
		return err
	}
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	for {
		left := 0
		now := childPIDs(master)
		for pid := range old {
			if now[pid] {
				left++
			}
		}
		fresh := len(now) - left
		if left == 0 && fresh > 0 {
			logf(env, "nginx reloaded; its old workers finished in %s", time.Since(began).Round(time.Millisecond))
			return nil
		}
		if !processAlive(master) {
			return fmt.Errorf("nginx's master (pid %d) exited during the reload", master)
		}
		if err := sleepCtx(wctx, 20*time.Millisecond); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if fresh == 0 {
				return fmt.Errorf("nginx did not reload within %s: no new workers (see its error log)", t.timeout)
			}
			return fmt.Errorf("%d old nginx workers still serving after %s: stopping the server now would cut their requests (raise timeout, or set worker_shutdown_timeout in nginx.conf)", left, t.timeout)
		}
	}
}

// run runs nginx with args (after -c conf when set).
func (t nginxTarget) run(ctx context.Context, env *executor.Env, args ...string) error {
	argv := []string{t.nginx}
	if t.conf != "" {
		argv = append(argv, "-c", t.conf)
	}
	argv = append(argv, args...)
	return runCommand(ctx, env, Local{}, command{argv: argv, timeout: 30 * time.Second})
}

// nginxRestore sets the server lines the step changed back to their
// down flags before it.
type nginxRestore struct {
	nginxTarget
	was []bool
}

func (u *nginxRestore) Describe() string {
	state := "up"
	for _, d := range u.was {
		if d {
			state = "down"
		}
	}
	return fmt.Sprintf("set %s back to %s, nginx -t, reload", u.nginxTarget, state)
}

func (u *nginxRestore) Undo(ctx context.Context, env *executor.Env) error {
	lock := fileLock(u.file)
	lock.Lock()
	defer lock.Unlock()
	text, mode, err := readUpstreamFile(u.file)
	if err != nil {
		return err
	}
	conf, err := parseNginxUpstreams(text)
	if err != nil {
		return fmt.Errorf("%s: %w", u.file, err)
	}
	mine := conf.find(u.upstream, u.server)
	if len(mine) != len(u.was) {
		return fmt.Errorf("%s: %d matching server lines now, %d when the step ran; someone changed the file, set it by hand", u.nginxTarget, len(mine), len(u.was))
	}
	next := conf.withDown(mine, func(i int) bool { return u.was[i] })
	if next == text {
		return nil
	}
	return u.apply(ctx, env, text, next, mode)
}

// nginxReadmit is the undo of "down": run after the service is back.
type nginxReadmit struct{ *nginxRestore }

func (u *nginxReadmit) Readmit() {}

var _ executor.Readmitter = (*nginxReadmit)(nil)

var fileLocks sync.Map // cleaned path -> *sync.Mutex

// fileLock serializes the read-modify-write of one upstream file between
// services restarting in parallel.
func fileLock(path string) *sync.Mutex {
	m, _ := fileLocks.LoadOrStore(filepath.Clean(path), &sync.Mutex{})
	return m.(*sync.Mutex)
}

func readUpstreamFile(path string) (string, os.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, fmt.Errorf("upstream file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, fmt.Errorf("upstream file: %w", err)
	}
	return string(b), fi.Mode().Perm(), nil
}

// writeFileAtomic replaces path with content: a temporary file in the
// same directory, with path's mode and owner, synced and renamed over it,
// so nginx never reads half a file.
func writeFileAtomic(path, content string, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".rollout-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fail(err)
			}
		}
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s holds %q, not a process id", path, strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// childPIDs returns the processes whose parent is pid, from /proc.
func childPIDs(pid int) map[int]bool {
	out := map[int]bool{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command, which is in parentheses and may
		// hold anything: state, then ppid.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out[n] = true
		}
	}
	return out
}

func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

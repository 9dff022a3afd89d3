// Package demo is the demo platform of `rollout demo`: a dozen small real
// HTTP services (internal/demosvc) laid out from plans/demo.hcl, run as
// systemd units on the user's manager or on a private one, and removed
// again afterwards. The command itself (flags, signals, the run, the
// report) stays in cmd/rollout; this package knows only the platform.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/internal/usermanager"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/plans"
	"github.com/rollout-sh/rollout/steps"
)

// UnitPrefix starts every unit name the demo creates; cleanup touches
// nothing else.
const UnitPrefix = "rollout-demo-"

// ServiceCommand is the (hidden) rollout command the demo's units run.
const ServiceCommand = "demo-service"

// UsageError is a demo that cannot be set up as asked (--break names no
// demo service, no manager to run on): the caller's fault, not the
// machine's, so the CLI exits with its usage status.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, args...)}
}

// Service is one service of the demo platform, as the plan places it.
type Service struct {
	Name    string
	Unit    string
	Port    int
	Dir     string // working_dir: BASE/current, a link to the release it runs
	Base    string // BASE: releases/ID, current
	Release string // what --deploy ships: v2
	Log     string
}

// Manager is the systemd user manager the demo's units run on.
type Manager struct {
	Describe string // the one line that says which manager and why
	Address  string // what steps.Connect dials
	UnitDir  string
	Private  *usermanager.Manager // nil: the user's own manager
}

// Platform is one demo platform: what to build (the exported inputs), and
// once Setup has run, everything it created, so that Cleanup removes
// exactly that.
type Platform struct {
	// Break names the service that gets a broken v2 ("" for none).
	Break string
	// Keep starts a private manager detached, so that it outlives us.
	Keep bool
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Progress receives Setup's narrative lines; nil discards them.
	Progress io.Writer

	Dir      string // the demo directory; "" until Setup made it
	PortBase int    // the services listen on PortBase+1 ... PortBase+12
	Bin      string // the copy of this binary the units run
	Manager  *Manager
	Services []*Service
	Units    []string // unit files written (full paths)

	sd *steps.DBus
}

// PlanPath is the demo plan, copied into the demo directory.
func (p *Platform) PlanPath() string { return filepath.Join(p.Dir, "demo.hcl") }

// Vars are the plan variables the demo plan needs, as --var K=V.
func (p *Platform) Vars() []string {
	return []string{"dir=" + p.Dir, "port_base=" + strconv.Itoa(p.PortBase)}
}

// DeployPath is where the releases (v2) are: the run's --deploy-path.
func (p *Platform) DeployPath() string { return filepath.Join(p.Dir, "release") }

// LockPath is the run lock of the demo's run, inside the demo directory
// so that a demo never contends with real runs.
func (p *Platform) LockPath() string { return filepath.Join(p.Dir, "lock") }

// BusAddress is the D-Bus address of the manager the units run on.
func (p *Platform) BusAddress() string {
	if p.Manager == nil {
		return ""
	}
	return p.Manager.Address
}

func (p *Platform) getenv(key string) string {
	if p.Getenv == nil {
		return os.Getenv(key)
	}
	return p.Getenv(key)
}

func (p *Platform) progress() io.Writer {
	if p.Progress == nil {
		return io.Discard
	}
	return p.Progress
}

// Setup creates the demo directory, picks the manager, writes the
// services' code, releases and units, and starts them. Whatever it
// created before an error is recorded for Cleanup.
func (p *Platform) Setup(ctx context.Context) error {
	w := p.progress()
	dir, err := os.MkdirTemp("", "rollout-demo-")
	if err != nil {
		return fmt.Errorf("creating the demo directory: %w", err)
	}
	p.Dir = dir
	if err := os.WriteFile(p.PlanPath(), plans.Demo, 0o644); err != nil {
		return err
	}
	p.PortBase, err = findPortBase(12)
	if err != nil {
		return err
	}
	plan, diags := compilePlan(p.PlanPath(), p.Dir, p.PortBase)
	if plan == nil {
		return fmt.Errorf("the demo plan does not compile: %s", diags.Error())
	}
	p.Services, err = servicesOf(plan, p.Dir)
	if err != nil {
		return err
	}
	if p.Break != "" {
		if !hasService(plan, p.Break) {
			return usageErrorf("`--break %s`: no such demo service; choose one of: %s", p.Break, strings.Join(plan.Order, ", "))
		}
	}
	if err := p.layout(); err != nil {
		return err
	}
	if err := p.copyBinary(); err != nil {
		return err
	}

	p.Manager, err = chooseManager(p.getenv, p.Dir, p.Keep)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "rollout demo: %s.\n", p.Manager.Describe)
	fmt.Fprintf(w, "Demo directory: %s (each service in apps/NAME/releases, run from apps/NAME/current; v2 in release/; the plan in demo.hcl)\n", p.Dir)

	p.sd, err = steps.Connect(context.Background(), steps.ConnectOptions{Address: p.Manager.Address, CallTimeout: 10 * time.Second, JobTimeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("connecting to the systemd manager: %w", err)
	}
	for _, s := range p.Services {
		path := filepath.Join(p.Manager.UnitDir, s.Unit)
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("unit file %s already exists: another demo is running, or one was kept (--keep); clean it up first", path)
		}
	}
	if err := os.MkdirAll(p.Manager.UnitDir, 0o755); err != nil {
		return err
	}
	for _, s := range p.Services {
		path := filepath.Join(p.Manager.UnitDir, s.Unit)
		p.Units = append(p.Units, path)
		if err := os.WriteFile(path, []byte(unitText(s, p.Bin)), 0o644); err != nil {
			return err
		}
	}
	if err := p.sd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}

	started := time.Now()
	fmt.Fprintf(w, "Starting %s at v1 ...", plural(len(p.Services), "service"))
	errs := make([]error, len(p.Services))
	var wg sync.WaitGroup
	for i, s := range p.Services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.sd.Do(ctx, steps.OpStart, s.Unit); err != nil {
				errs[i] = fmt.Errorf("starting %s: %w (its log: %s)", s.Unit, err, s.Log)
				return
			}
			if err := waitHealthy(ctx, s.Port, 15*time.Second); err != nil {
				errs[i] = fmt.Errorf("%s: %w (its log: %s)", s.Name, err, s.Log)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(w)
		return err
	}
	fmt.Fprintf(w, " all healthy (%s).\n", time.Since(started).Round(10*time.Millisecond))
	if p.Break != "" {
		fmt.Fprintf(w, "Shipping a broken release to %s: its v2 answers /health with 503, so the restart fails and is rolled back.\n", p.Break)
	}
	return nil
}

// compilePlan compiles the demo plan at path as the demo's run will (with
// --deploy), to learn each service's unit, directory and port from it: the
// plan is the one place they are written down. The plan is nil when diags
// has errors.
func compilePlan(path, dir string, portBase int) (*planner.Plan, hcl.Diagnostics) {
	cfg, diags := dsl.Load(path, dsl.LoadOptions{Vars: map[string]string{"dir": dir, "port_base": strconv.Itoa(portBase)}})
	if cfg == nil || cfg.Incomplete {
		return nil, diags
	}
	plan, more := planner.Compile(cfg, planner.Options{
		StepTypes: steps.Types(),
		Run:       planner.RunFlags{Deploy: true, DeployPath: filepath.Join(dir, "release")},
	})
	if diags = append(diags, more...); diags.HasErrors() {
		return nil, diags
	}
	return plan, diags
}

// servicesOf places the plan's services in the demo directory dir.
func servicesOf(plan *planner.Plan, dir string) ([]*Service, error) {
	var services []*Service
	for _, svc := range plan.Services {
		if !strings.HasPrefix(svc.Unit, UnitPrefix) {
			return nil, fmt.Errorf("demo service %s has unit %s, which does not start with %s", svc.Name, svc.Unit, UnitPrefix)
		}
		port, err := healthPort(svc.Health)
		if err != nil {
			return nil, fmt.Errorf("demo service %s: %w", svc.Name, err)
		}
		if filepath.Base(svc.WorkingDir) != "current" {
			return nil, fmt.Errorf("demo service %s has working_dir %s, which is not a release's current link", svc.Name, svc.WorkingDir)
		}
		services = append(services, &Service{
			Name:    svc.Name,
			Unit:    svc.Unit,
			Port:    port,
			Dir:     svc.WorkingDir,
			Base:    filepath.Dir(svc.WorkingDir),
			Release: filepath.Join(dir, "release", svc.Name),
			Log:     filepath.Join(dir, "logs", svc.Name+".log"),
		})
	}
	return services, nil
}

func hasService(plan *planner.Plan, name string) bool {
	for _, s := range plan.Services {
		if s.Name == name {
			return true
		}
	}
	return false
}

func healthPort(h *planner.Health) (int, error) {
	if h == nil || h.URL == "" {
		return 0, errors.New("no http health check to learn its port from")
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return 0, fmt.Errorf("health URL %s has no port", h.URL)
	}
	return port, nil
}

// layout writes each service's first release (v1, current) and what
// --deploy ships (v2, or a broken v2 for Break).
func (p *Platform) layout() error {
	write := func(path, content string) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, []byte(content), 0o644)
	}
	// Release ids sort by time; v1 is a minute old, so the run's v2 sorts
	// after it.
	v1 := time.Now().UTC().Add(-time.Minute).Format("20060102T150405Z") + "-v1"
	for _, s := range p.Services {
		if !strings.HasPrefix(s.Dir, p.Dir+string(filepath.Separator)) {
			return fmt.Errorf("demo service %s has working_dir %s outside the demo directory", s.Name, s.Dir)
		}
		files := map[string]string{
			filepath.Join(s.Base, "releases", v1, "VERSION"): "v1\n",
			filepath.Join(s.Release, "VERSION"):              "v2\n",
		}
		if s.Name == p.Break {
			files[filepath.Join(s.Release, "VERSION")] = "v2-broken\n"
			files[filepath.Join(s.Release, "UNHEALTHY")] = "shipped broken by `rollout demo --break`\n"
		}
		for path, content := range files {
			if err := write(path, content); err != nil {
				return err
			}
		}
		if err := os.Symlink("releases/"+v1, s.Dir); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(p.Dir, "logs"), 0o755)
}

// copyBinary puts this binary into the demo directory for the units to
// run: `go run` deletes its build when it exits, and a kept demo must
// still restart afterwards.
func (p *Platform) copyBinary() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	p.Bin = filepath.Join(p.Dir, "bin", "rollout")
	if err := os.MkdirAll(filepath.Dir(p.Bin), 0o755); err != nil {
		return err
	}
	dst, err := os.OpenFile(p.Bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// unitText is the unit of one demo service, running bin. ExecStart's
// paths are quoted (systemd accepts C-style double quotes) in case TMPDIR
// has spaces.
func unitText(s *Service, bin string) string {
	return fmt.Sprintf(`[Unit]
Description=rollout demo service %s

[Service]
Type=exec
ExecStart=%q %s -addr 127.0.0.1:%d -dir %q
WorkingDirectory=%s
StandardOutput=append:%s
StandardError=inherit
`, s.Name, bin, ServiceCommand, s.Port, s.Dir, s.Dir, s.Log)
}

// Close closes the connection to the manager and leaves everything
// running: the end of a kept demo.
func (p *Platform) Close() {
	if p.sd != nil {
		p.sd.Close()
		p.sd = nil
	}
}

// Cleanup removes everything the demo created: it stops the units,
// removes their unit files (and the .backup copies the run made),
// reloads, stops the private manager and removes the demo directory.
// Every part runs even when an earlier one fails. done says what was
// cleaned up ("" when the demo got no manager, and so started nothing);
// problems are the parts that failed.
func (p *Platform) Cleanup() (done string, problems []error) {
	if p.Dir == "" {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if p.sd != nil && len(p.Units) > 0 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, path := range p.Units {
			unit := filepath.Base(path)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.sd.Do(ctx, steps.OpStop, unit); err != nil && !errors.Is(err, steps.ErrNoSuchUnit) {
					mu.Lock()
					problems = append(problems, fmt.Errorf("stop %s: %v", unit, err))
					mu.Unlock()
				}
				_ = p.sd.Reset(ctx, unit)
			}()
		}
		wg.Wait()
	}
	for _, path := range p.Units {
		for _, f := range []string{path, path + ".backup"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				problems = append(problems, err)
			}
		}
	}
	if p.sd != nil {
		if len(p.Units) > 0 {
			if err := p.sd.DaemonReload(ctx); err != nil {
				problems = append(problems, fmt.Errorf("daemon-reload: %w", err))
			}
		}
		p.Close()
	}
	done = fmt.Sprintf("stopped %s and removed their unit files", plural(len(p.Units), "unit"))
	if p.Manager != nil && p.Manager.Private != nil {
		p.Manager.Private.Stop()
		done += ", stopped the private manager"
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		problems = append(problems, err)
	}
	if p.Manager == nil {
		return "", problems
	}
	return done + ", removed " + p.Dir, problems
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

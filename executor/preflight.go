package executor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rollout-sh/rollout/planner"
)

// Machine answers preflight's questions about the machine a service's steps
// run on. Today that is always this machine (steps.LocalMachine); a remote
// host answers the same questions over its own connection.
type Machine interface {
	// Where names the machine in messages: "this machine", a host name.
	Where() string
	// LookPath reports whether p can be run as its step would run it: a
	// bare name found on PATH, or a path to an executable file.
	LookPath(p planner.Program) error
	// Dir describes the directory at path.
	Dir(path string) (DirInfo, error)
	// FreeSpace returns the bytes an unprivileged user may still write on
	// path's filesystem, and an id of that filesystem (so that each one is
	// reported once).
	FreeSpace(path string) (free int64, fs string, err error)
	// Unit reads what preflight needs of a unit. ErrUnitsUnknown means the
	// machine's systemd cannot be asked (a dry run without a manager).
	Unit(ctx context.Context, name string) (UnitInfo, error)
}

// DirInfo is what preflight needs of a directory.
type DirInfo struct {
	Exists, IsDir bool
	Empty         bool // a directory with no entries
}

// UnitInfo is what preflight needs of a unit.
type UnitInfo struct {
	LoadState        string
	FragmentPath     string
	NeedDaemonReload bool
}

// ErrUnitsUnknown is returned by Machine.Unit when systemd cannot be asked;
// preflight then skips the unit checks and says so.
var ErrUnitsUnknown = errors.New("the systemd manager cannot be reached")

// PreflightOptions control Preflight.
type PreflightOptions struct {
	// Machine returns where a service's steps run.
	Machine func(svc *planner.Service) Machine
	// Force turns two problems into warnings: a unit file changed on disk
	// since systemd loaded it, and free space below the plan's minimum (an
	// emergency restart on a full disk must stay possible). Nothing else:
	// an empty deploy source is refused even with --force.
	Force bool
	// UserManager makes the advice say `systemctl --user`.
	UserManager bool
	// Warn receives each warning (forced problems, checks not made).
	Warn func(string)
}

// PreflightError lists every problem preflight found. Nothing was changed.
type PreflightError struct {
	Problems []string
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "preflight found %s; nothing was changed:", plural(len(e.Problems), "problem"))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p)
	}
	return b.String()
}

// Preflight checks, before anything changes, that every selected step can
// run: its programs exist where it runs, the directories it copies from are
// there and not empty, the directories it works in exist, its units are
// loaded and their unit files unchanged since systemd loaded them, and the
// working directories' filesystems have plan.MinFreeSpace free. It reads
// only; it returns a *PreflightError listing every problem, each once with
// the services that share it.
func Preflight(ctx context.Context, plan *planner.Plan, opts PreflightOptions) error {
	if plan == nil {
		return errors.New("executor: no plan")
	}
	if opts.Machine == nil {
		return errors.New("executor: preflight without a machine")
	}
	machines, err := preflightMachines(plan, opts)
	if err != nil {
		return err
	}
	prefetch(ctx, plan, machines)
	pf := &preflight{opts: opts, index: map[string]*finding{}}
	unitsChecked := map[string]bool{}
	fsChecked := map[string]bool{}
	for i, svc := range plan.Services {
		pf.service(ctx, plan, svc, machines[i], unitsChecked, fsChecked)
	}
	for _, w := range pf.warnings {
		if opts.Warn != nil {
			opts.Warn(w)
		}
	}
	if len(pf.findings) == 0 {
		return nil
	}
	e := &PreflightError{}
	for _, f := range pf.findings {
		e.Problems = append(e.Problems, f.String())
	}
	return e
}

// preflightMachines returns each service's machine, one memo per machine
// (by its name), so that a question asked twice is answered once.
func preflightMachines(plan *planner.Plan, opts PreflightOptions) ([]*memoMachine, error) {
	byWhere := map[string]*memoMachine{}
	out := make([]*memoMachine, len(plan.Services))
	for i, svc := range plan.Services {
		m := opts.Machine(svc)
		if m == nil {
			return nil, fmt.Errorf("executor: no machine for service %s", svc.Name)
		}
		mm, ok := byWhere[m.Where()]
		if !ok {
			mm = newMemoMachine(m)
			byWhere[m.Where()] = mm
		}
		out[i] = mm
	}
	return out, nil
}

// prefetchWorkers is how many of one machine's questions are asked at
// once. A host answers each over its one ssh connection, and sshd allows
// 10 sessions on a connection (MaxSessions): the run's D-Bus bridge and
// host lock hold some of them.
const prefetchWorkers = 6

// prefetch asks every machine its questions before the checks read them:
// each machine's services are walked by a few workers at once, so that a
// plan's hundreds of unit reads and a host's round trips overlap rather
// than add up. The walk records no problem (the checks that follow do,
// in plan order, from the memo); it only fills the memos.
func prefetch(ctx context.Context, plan *planner.Plan, machines []*memoMachine) {
	queues := map[*memoMachine][]*planner.Service{}
	var order []*memoMachine
	for i, svc := range plan.Services {
		m := machines[i]
		if _, ok := queues[m]; !ok {
			order = append(order, m)
		}
		queues[m] = append(queues[m], svc)
	}
	var wg sync.WaitGroup
	for _, m := range order {
		work := make(chan *planner.Service)
		for range min(prefetchWorkers, len(queues[m])) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				scratch := &preflight{index: map[string]*finding{}}
				units, fs := map[string]bool{}, map[string]bool{}
				for svc := range work {
					scratch.service(ctx, plan, svc, m, units, fs)
				}
			}()
		}
		go func() {
			defer close(work)
			for _, svc := range queues[m] {
				if ctx.Err() != nil {
					return
				}
				work <- svc
			}
		}()
	}
	wg.Wait()
}

// service checks one service's steps on its machine m.
func (pf *preflight) service(ctx context.Context, plan *planner.Plan, svc *planner.Service, m Machine, unitsChecked, fsChecked map[string]bool) {
	where := m.Where()
	var copies []planner.Copy // the service's earlier copies
	var units, spaceDirs []string
	if svc.WorkingDir != "" {
		spaceDirs = append(spaceDirs, svc.WorkingDir)
	}
	for _, st := range svc.Steps {
		user := fmt.Sprintf("%s (step %q)", svc.Name, st.Name)
		n := st.Needs
		for _, p := range n.Programs {
			pf.program(m, p, copies, user)
		}
		for _, c := range n.Copies {
			pf.copyDirs(m, c, user)
			spaceDirs = append(spaceDirs, c.To)
			copies = append(copies, c)
		}
		for _, d := range n.Dirs {
			if !coveredBy(d, copies) {
				pf.dir(m, d, "working directory", user)
			}
			spaceDirs = append(spaceDirs, d)
		}
		units = append(units, n.Units...)
	}
	for _, u := range units {
		key := where + "\x00" + u
		if unitsChecked[key] {
			continue
		}
		unitsChecked[key] = true
		pf.unit(ctx, m, u, svc.Name)
	}
	if plan.MinFreeSpace > 0 {
		for _, d := range spaceDirs {
			pf.freeSpace(m, d, plan.MinFreeSpace, fsChecked, svc.Name)
		}
	}
}

// memoMachine answers each question of its Machine once, for any number
// of goroutines: the first asker asks, the others wait for its answer.
type memoMachine struct {
	Machine
	mu    sync.Mutex
	cache map[string]*memoEntry
}

type memoEntry struct {
	once sync.Once
	val  any
	fs   string
	err  error
}

func newMemoMachine(m Machine) *memoMachine {
	return &memoMachine{Machine: m, cache: map[string]*memoEntry{}}
}

func (m *memoMachine) entry(key string) *memoEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.cache[key]
	if !ok {
		e = &memoEntry{}
		m.cache[key] = e
	}
	return e
}

func (m *memoMachine) LookPath(p planner.Program) error {
	e := m.entry("look\x00" + p.Name + "\x00" + p.Dir)
	e.once.Do(func() { e.err = m.Machine.LookPath(p) })
	return e.err
}

func (m *memoMachine) Dir(path string) (DirInfo, error) {
	e := m.entry("dir\x00" + path)
	e.once.Do(func() { e.val, e.err = m.Machine.Dir(path) })
	info, _ := e.val.(DirInfo)
	return info, e.err
}

func (m *memoMachine) FreeSpace(path string) (int64, string, error) {
	e := m.entry("free\x00" + path)
	e.once.Do(func() {
		var free int64
		free, e.fs, e.err = m.Machine.FreeSpace(path)
		e.val = free
	})
	free, _ := e.val.(int64)
	return free, e.fs, e.err
}

func (m *memoMachine) Unit(ctx context.Context, name string) (UnitInfo, error) {
	e := m.entry("unit\x00" + name)
	e.once.Do(func() { e.val, e.err = m.Machine.Unit(ctx, name) })
	info, _ := e.val.(UnitInfo)
	return info, e.err
}

// finding is one problem and the services (and steps) it stops.
type finding struct {
	text, advice string
	users        []string
}

func (f *finding) String() string {
	s := f.text
	if len(f.users) > 0 {
		const most = 4
		users := f.users
		more := ""
		if len(users) > most {
			more = fmt.Sprintf(" and %d more", len(users)-most)
			users = users[:most]
		}
		s += "; needed by " + strings.Join(users, ", ") + more
	}
	if f.advice != "" {
		s += ". " + f.advice
	}
	return s
}

type preflight struct {
	opts     PreflightOptions
	findings []*finding
	index    map[string]*finding
	warnings []string
	noUnits  bool
}

// problem records a problem; the same text from another service adds
// that service to the first one's list.
func (pf *preflight) problem(text, advice, user string) {
	f, ok := pf.index[text]
	if !ok {
		f = &finding{text: text, advice: advice}
		pf.index[text] = f
		pf.findings = append(pf.findings, f)
	}
	if user != "" {
		for _, u := range f.users {
			if u == user {
				return
			}
		}
		f.users = append(f.users, user)
	}
}

func (pf *preflight) warn(s string) {
	for _, w := range pf.warnings {
		if w == s {
			return
		}
	}
	pf.warnings = append(pf.warnings, s)
}

func (pf *preflight) program(m Machine, p planner.Program, copies []planner.Copy, user string) {
	if p.Name == "" {
		pf.problem(fmt.Sprintf("the %s names no program", p.Use), "Give the program's name or path as the first element", user)
		return
	}
	err := m.LookPath(p)
	if err == nil {
		return
	}
	// A program inside a directory an earlier step of the service copies
	// into may arrive with that copy: look for it in the copy's source.
	if strings.Contains(p.Name, "/") {
		path := p.Name
		if !filepath.IsAbs(path) && p.Dir != "" {
			path = filepath.Join(p.Dir, path)
		}
		for _, c := range copies {
			if rel, ok := within(path, c.To); ok {
				if m.LookPath(planner.Program{Name: filepath.Join(c.From, rel), Use: p.Use}) == nil {
					return
				}
			}
		}
	}
	advice := "Install it, or give its absolute path"
	if strings.Contains(p.Name, "/") {
		advice = "Check the path; a relative path is resolved in the step's dir"
	}
	pf.problem(fmt.Sprintf("%s: %v on %s (the %s)", p.Name, err, m.Where(), p.Use), advice, user)
}

func (pf *preflight) copyDirs(m Machine, c planner.Copy, user string) {
	where := m.Where()
	switch {
	case c.From == "":
		pf.problem("a copy has no source directory (from is empty)", "Pass `--deploy-path DIR` or set the step's from", user)
	default:
		info, err := m.Dir(c.From)
		switch {
		case err != nil:
			pf.problem(fmt.Sprintf("source directory %s cannot be read on %s: %v", c.From, where, err), "", user)
		case !info.Exists:
			pf.problem(fmt.Sprintf("source directory %s does not exist on %s", c.From, where), "Check `--deploy-path` and the step's from", user)
		case !info.IsDir:
			pf.problem(fmt.Sprintf("source %s is not a directory", c.From), "Check `--deploy-path` and the step's from", user)
		case info.Empty && c.To != "":
			pf.problem(fmt.Sprintf("source directory %s is empty: copying it would empty %s", c.From, c.To),
				"Check `--deploy-path` (the build may have failed); `--force` does not override this", user)
		case info.Empty:
			pf.problem(fmt.Sprintf("source directory %s is empty: it would deploy no code", c.From),
				"Check `--deploy-path` (the build may have failed); `--force` does not override this", user)
		}
	}
	if c.To != "" {
		pf.dir(m, c.To, "target directory", user)
	}
}

func (pf *preflight) dir(m Machine, path, what, user string) {
	info, err := m.Dir(path)
	switch {
	case err != nil:
		pf.problem(fmt.Sprintf("%s %s cannot be read on %s: %v", what, path, m.Where(), err), "", user)
	case !info.Exists:
		pf.problem(fmt.Sprintf("%s %s does not exist on %s", what, path, m.Where()), "Create it, or correct the plan", user)
	case !info.IsDir:
		pf.problem(fmt.Sprintf("%s %s is not a directory", what, path), "Correct the plan", user)
	}
}

func (pf *preflight) unit(ctx context.Context, m Machine, name, user string) {
	if pf.noUnits {
		return
	}
	info, err := m.Unit(ctx, name)
	switch {
	case errors.Is(err, ErrUnitsUnknown):
		pf.noUnits = true
		pf.warn(fmt.Sprintf("units not checked on %s: %v", m.Where(), err))
		return
	case err != nil:
		pf.problem(fmt.Sprintf("unit %s cannot be read on %s: %v", name, m.Where(), err), "", user)
		return
	case info.LoadState != "loaded":
		state := info.LoadState
		if state == "" {
			state = "unknown"
		}
		pf.problem(fmt.Sprintf("unit %s is not loaded on %s (LoadState=%s)", name, m.Where(), state),
			"Check the unit name, or install its unit file and run `"+pf.systemctl()+" daemon-reload`", user)
	case info.NeedDaemonReload:
		file := info.FragmentPath
		if file == "" {
			file = "its unit file"
		}
		text := fmt.Sprintf("unit %s: %s (or a drop-in) changed on disk since systemd loaded it, so the backup would save the edited file and a rollback would restore it", name, file)
		if pf.opts.Force {
			pf.warn(text + "; going on because of `--force`")
			return
		}
		pf.problem(text, "Run `"+pf.systemctl()+" daemon-reload` if the edit is meant, or undo it; `--force` runs anyway", user)
	}
}

func (pf *preflight) freeSpace(m Machine, dir string, minFree int64, checked map[string]bool, user string) {
	info, err := m.Dir(dir)
	if err != nil || !info.Exists {
		// A missing directory a step needs is reported by dir; one no
		// step uses has no filesystem to measure.
		return
	}
	free, fs, err := m.FreeSpace(dir)
	if err != nil {
		pf.problem(fmt.Sprintf("free space of %s cannot be read on %s: %v", dir, m.Where(), err), "", user)
		return
	}
	key := m.Where() + "\x00" + fs
	if checked[key] {
		if f, ok := pf.index["space\x00"+key]; ok && user != "" {
			// Name every service on the full filesystem.
			pf.addUser(f, user)
		}
		return
	}
	checked[key] = true
	if free >= minFree {
		return
	}
	text := fmt.Sprintf("only %s free on the filesystem of %s on %s, below min_free_space %s", formatBytes(free), dir, m.Where(), formatBytes(minFree))
	if pf.opts.Force {
		pf.warn(text + "; going on because of `--force`")
		return
	}
	f := &finding{text: text, advice: "Free some space, or lower `min_free_space` in the plan's defaults; `--force` runs anyway"}
	pf.index["space\x00"+key] = f
	pf.findings = append(pf.findings, f)
	pf.addUser(f, user)
}

func (pf *preflight) addUser(f *finding, user string) {
	for _, u := range f.users {
		if u == user {
			return
		}
	}
	f.users = append(f.users, user)
}

func (pf *preflight) systemctl() string {
	if pf.opts.UserManager {
		return "systemctl --user"
	}
	return "systemctl"
}

// within reports whether path is dir or inside it, and path relative to dir.
func within(path, dir string) (string, bool) {
	if dir == "" {
		return "", false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// coveredBy reports whether dir is inside the target of an earlier copy,
// so that it may arrive with the copy.
func coveredBy(dir string, copies []planner.Copy) bool {
	for _, c := range copies {
		if rel, ok := within(dir, c.To); ok && rel != "." {
			return true
		}
	}
	return false
}

// formatBytes prints a size in the largest binary unit, one decimal.
func formatBytes(b int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(b)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", b)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", f), ".0") + units[i]
}

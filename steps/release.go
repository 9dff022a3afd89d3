package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// defaultKeepReleases is how many releases a release step keeps, as
// Capistrano's keep_releases and Deployer's keep_releases.
const defaultKeepReleases = 5

// release deploys code as Capistrano and Deployer do: a copy of `from`
// becomes BASE/releases/ID, the shared paths are linked into it from
// BASE/shared, and BASE/current is switched to it in one rename. The
// service runs from BASE/current, so the undo is switching the link back.
func releaseStepType() planner.StepType {
	return planner.StepType{
		Name: TypeRelease,
		Spec: hcldec.ObjectSpec{
			"from":   &hcldec.AttrSpec{Name: "from", Type: cty.String, Required: true},
			"to":     &hcldec.AttrSpec{Name: "to", Type: cty.String},
			"shared": &hcldec.AttrSpec{Name: "shared", Type: cty.List(cty.String)},
			"keep":   &hcldec.AttrSpec{Name: "keep", Type: cty.Number},
		},
		Rollback: "points `current` back at the previous release and removes the new one",
		// Two services releasing into one base would switch each other's
		// `current`; two deploying one directory would run each other's
		// code (--deploy-path DIR on a plan of several services).
		UniqueArgs: []string{"from", "to"},
		Validate:   validateAll(validateSharedPaths("shared"), validateKeep("keep")),
	}
}

// switch_release points `current` at an existing release. `rollout
// rollback` runs it in the pipeline it generates; a plan may use it too.
func switchReleaseStepType() planner.StepType {
	return planner.StepType{
		Name: TypeSwitchRelease,
		Spec: hcldec.ObjectSpec{
			"to":       &hcldec.AttrSpec{Name: "to", Type: cty.String, Required: true},
			"release":  &hcldec.AttrSpec{Name: "release", Type: cty.String, Required: true},
			"expect":   &hcldec.AttrSpec{Name: "expect", Type: cty.String},
			"mark_bad": &hcldec.AttrSpec{Name: "mark_bad", Type: cty.Bool},
		},
		Rollback:   "points `current` back at the release it left",
		UniqueArgs: []string{"to"},
	}
}

type releaseStep struct {
	from, base string
	shared     []string
	keep       int
	fs         releaseFS // where base is: this machine or the instance's host

	// id is chosen once, by whichever of InFlightRecord and Do runs
	// first, so that the journal names the directory Do creates.
	id  string
	now func() time.Time
}

func (b *builder) buildRelease(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &releaseStep{keep: defaultKeepReleases, now: time.Now, fs: releaseFSOn(b.host)}
	s.from, _ = r.str("from")
	s.base, _ = r.str("to")
	s.shared, _ = r.strList("shared")
	base, err := releaseBaseOf(svc, s.base)
	if err != nil {
		return nil, err
	}
	s.base = base
	if k, ok := r.integer("keep"); ok {
		if k < 1 {
			return nil, fmt.Errorf("keep must be at least 1, not %d", k)
		}
		s.keep = k
	}
	for _, p := range s.shared {
		if msg := sharedPathProblem(p); msg != "" {
			return nil, fmt.Errorf("shared path %q: %s", p, msg)
		}
	}
	// Empty from/to are refused in Do, as rsync's: `from =
	// run.deploy_path` is empty in a run without --deploy, where `if`
	// skips the step.
	return s, nil
}

// releaseBaseOf returns the base a release step of svc deploys into:
// `to`, or else the service's working_dir without its final /current. The
// service must run from BASE/current (or below it): a release it does not
// run would deploy nothing.
func releaseBaseOf(svc *planner.Service, to string) (string, error) {
	if svc.Host != nil {
		// A relative path would be made absolute against the controller's
		// directory, which means nothing on the host.
		for _, p := range []string{to, svc.WorkingDir} {
			if p != "" && !filepath.IsAbs(p) {
				return "", fmt.Errorf("%q is relative; on host %s give release paths (`to`, working_dir) as absolute paths", p, svc.Host.Name)
			}
		}
	}
	wd := ""
	if svc.WorkingDir != "" {
		wd = absOrSelf(filepath.Clean(svc.WorkingDir))
	}
	if to == "" {
		if wd == "" || filepath.Base(wd) != currentLink {
			return "", fmt.Errorf("set `to` to the directory that holds releases/, shared/ and current, or give the service a working_dir ending in /current")
		}
		return filepath.Dir(wd), nil
	}
	base := absOrSelf(filepath.Clean(to))
	if wd != "" && !within(wd, filepath.Join(base, currentLink)) {
		return "", fmt.Errorf("the service's working_dir %s is not inside %s, so the service would not run the release: set working_dir (and the unit's WorkingDirectory) to %s", wd, filepath.Join(base, currentLink), filepath.Join(base, currentLink))
	}
	return base, nil
}

func (s *releaseStep) releaseID() string {
	if s.id == "" {
		s.id = newReleaseID(s.now())
	}
	return s.id
}

// InFlightRecord implements executor.InFlightRecordable: if the run dies
// while the release is copied or switched, recovery points `current` back
// at the release it had before (read now, before anything changes) and
// removes the new one, complete or partial.
func (s *releaseStep) InFlightRecord(*executor.Env) (executor.UndoRecord, bool) {
	if s.base == "" {
		return executor.UndoRecord{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), fsTimeout)
	defer cancel()
	prev, err := s.fs.readCurrent(ctx, s.base)
	if err != nil {
		// Do fails on the same error before it changes anything.
		return executor.UndoRecord{}, false
	}
	return (&releaseUndo{base: s.base, back: prev, discard: s.releaseID()}).Record(), true
}

func (s *releaseStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	if s.from == "" || s.base == "" {
		return nil, fmt.Errorf("release needs both from and to (from = %q, to = %q)", s.from, s.base)
	}
	from, err := filepath.Abs(s.from)
	if err != nil {
		return nil, err
	}
	base, rfs := s.base, s.fs
	on := rfs.where()
	// The source is on the controller; it overlaps the base only when
	// both are on this machine.
	overlapBase := base
	if on != "" {
		overlapBase = ""
	}
	if err := checkReleaseSource(from, overlapBase); err != nil {
		return nil, err
	}
	// A missing base is refused rather than created, as rsync's target:
	// a typo in `to` should not deploy to a fresh path that no unit runs.
	if dir, err := rfs.isDir(ctx, base); err != nil {
		return nil, fmt.Errorf("release base%s: %w (create it, and point the unit's WorkingDirectory at %s)", on, err, filepath.Join(base, currentLink))
	} else if !dir {
		return nil, fmt.Errorf("release base %q%s is not a directory", base, on)
	}
	prev, err := rfs.readCurrent(ctx, base)
	if err != nil {
		return nil, err
	}
	if err := rfs.mkdirAll(ctx, filepath.Join(base, releasesDir), filepath.Join(base, sharedDir)); err != nil {
		return nil, err
	}
	id := s.releaseID()
	partial := partialPath(base, id)
	if err := rfs.removeAll(ctx, partial); err != nil {
		return nil, err
	}
	logf(env, "copy %s to %s%s", from, releasePath(base, id), on)
	if err := rfs.copyIn(ctx, from, partial); err != nil {
		// Nothing a service sees changed; the partial copy is clutter.
		_ = rfs.removeAll(context.WithoutCancel(ctx), partial)
		return nil, fmt.Errorf("copy %s%s: %w", from, on, err)
	}
	for _, p := range s.shared {
		if err := rfs.linkShared(ctx, base, partial, filepath.FromSlash(p)); err != nil {
			_ = rfs.removeAll(context.WithoutCancel(ctx), partial)
			return nil, err
		}
	}
	// The files reach the disk before anything points at them, and the
	// release gets its name only when it is whole.
	renamed, err := rfs.publish(ctx, partial, releasePath(base, id))
	if !renamed {
		_ = rfs.removeAll(context.WithoutCancel(ctx), partial)
		return nil, err
	}
	u := &releaseUndo{base: base, back: prev, discard: id, keep: s.keep, fs: rfs}
	if err != nil {
		return u, err
	}
	if err := rfs.switchCurrent(ctx, base, id); err != nil {
		return u, err
	}
	if prev == "" {
		logf(env, "%s -> %s (first release)%s", filepath.Join(base, currentLink), linkTarget(id), on)
	} else {
		logf(env, "%s -> %s (was %s)%s", filepath.Join(base, currentLink), linkTarget(id), linkTarget(prev), on)
	}
	return u, nil
}

// checkReleaseSource refuses a source that is missing, not a directory,
// empty (a wrong --deploy-path must not become a release that serves
// nothing), or that overlaps the base (the copy would copy itself; base
// "" skips that check, for a base on another machine).
func checkReleaseSource(from, base string) error {
	fi, err := os.Stat(from)
	if err != nil {
		return fmt.Errorf("release source: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("release source %q is not a directory", from)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("release source: %w", err)
	}
	if len(entries) == 0 {
		return fmt.Errorf("release source %q is empty: check --deploy-path", from)
	}
	if base != "" && (within(from, base) || within(base, from)) {
		return fmt.Errorf("release source %q and base %q overlap: deploy from a directory outside the base", from, base)
	}
	return nil
}

// within says whether p is dir or inside it (both clean and absolute).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

type switchReleaseStep struct {
	base, release, expect string
	markBad               bool
	fs                    releaseFS
}

func (b *builder) buildSwitchRelease(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &switchReleaseStep{markBad: true, fs: releaseFSOn(b.host)}
	s.base, _ = r.str("to")
	s.release, _ = r.str("release")
	if on := where(b.host); on != "" && s.base != "" && !filepath.IsAbs(s.base) {
		return nil, fmt.Errorf("%q is relative%s: give `to` as an absolute path", s.base, on)
	}
	s.base = absOrSelf(s.base)
	s.expect, _ = r.str("expect")
	if m, ok := r.boolean("mark_bad"); ok {
		s.markBad = m
	}
	if s.base == "" || !validReleaseID(s.release) {
		return nil, fmt.Errorf("switch_release needs a base and a release id (to = %q, release = %q)", s.base, s.release)
	}
	return s, nil
}

// InFlightRecord implements executor.InFlightRecordable: the release
// `current` points at before the switch.
func (s *switchReleaseStep) InFlightRecord(*executor.Env) (executor.UndoRecord, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), fsTimeout)
	defer cancel()
	prev, err := s.fs.readCurrent(ctx, s.base)
	if err != nil {
		return executor.UndoRecord{}, false
	}
	return (&releaseUndo{base: s.base, back: prev}).Record(), true
}

func (s *switchReleaseStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	rfs := s.fs
	on := rfs.where()
	prev, err := rfs.readCurrent(ctx, s.base)
	if err != nil {
		return nil, err
	}
	if s.expect != "" && prev != s.expect {
		return nil, fmt.Errorf("%s%s is %s, not %s as planned: another deploy ran meanwhile; look again with `rollout releases`", filepath.Join(s.base, currentLink), on, orNone(prev), s.expect)
	}
	if prev == s.release {
		return nil, fmt.Errorf("release %s is already current%s", s.release, on)
	}
	if dir, err := rfs.isDir(ctx, releasePath(s.base, s.release)); err != nil {
		return nil, fmt.Errorf("release %s%s: %w", s.release, on, err)
	} else if !dir {
		return nil, fmt.Errorf("release %s%s is not a directory", releasePath(s.base, s.release), on)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u := &releaseUndo{base: s.base, back: prev, fs: rfs}
	if s.markBad && prev != "" {
		runID := ""
		if env != nil {
			runID = env.RunID
		}
		u.markBad = prev
		u.reason = fmt.Sprintf("rolled back to %s by run %s at %s", s.release, runID, time.Now().UTC().Format(time.RFC3339))
	}
	if err := rfs.switchCurrent(ctx, s.base, s.release); err != nil {
		return u, err
	}
	logf(env, "%s -> %s (was %s)%s", filepath.Join(s.base, currentLink), linkTarget(s.release), orNone(prev), on)
	return u, nil
}

// absOrSelf makes a base absolute when it can: the journal is read by a
// later process, maybe in another directory.
func absOrSelf(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return linkTarget(id)
}

// releaseUndo points `current` back at release back ("" = remove it) and
// removes discard, the release the step created.
//
// Commit runs once the service succeeded: the release step prunes old
// releases down to keep; the switch step marks the release it left bad.
type releaseUndo struct {
	base    string
	back    string
	discard string

	keep    int    // commit: releases to keep (0 = no pruning)
	markBad string // commit: release to mark bad
	reason  string

	fs releaseFS // nil: where rollout runs
}

func (u *releaseUndo) files() releaseFS {
	if u.fs == nil {
		return localFS{}
	}
	return u.fs
}

func (u *releaseUndo) Describe() string {
	var b strings.Builder
	if u.back == "" {
		fmt.Fprintf(&b, "remove %s", filepath.Join(u.base, currentLink))
	} else {
		fmt.Fprintf(&b, "point %s back at %s", filepath.Join(u.base, currentLink), linkTarget(u.back))
	}
	if u.discard != "" {
		fmt.Fprintf(&b, ", remove %s", linkTarget(u.discard))
	}
	b.WriteString(u.files().where())
	return b.String()
}

func (u *releaseUndo) Undo(ctx context.Context, env *executor.Env) error {
	rfs := u.files()
	on := rfs.where()
	cur, err := rfs.readCurrent(ctx, u.base)
	if err != nil {
		return err
	}
	if cur != u.back {
		if u.back != "" {
			if _, err := rfs.isDir(ctx, releasePath(u.base, u.back)); err != nil {
				return fmt.Errorf("cannot point %s%s back at %s: %w", filepath.Join(u.base, currentLink), on, linkTarget(u.back), err)
			}
		}
		if err := rfs.switchCurrent(ctx, u.base, u.back); err != nil {
			return err
		}
		logf(env, "%s -> %s%s", filepath.Join(u.base, currentLink), orNone(u.back), on)
	}
	if u.discard != "" && u.discard != u.back {
		if err := rfs.removeRelease(ctx, u.base, u.discard); err != nil {
			return fmt.Errorf("%s is back, but removing the failed release failed: %w", filepath.Join(u.base, currentLink), err)
		}
	}
	return nil
}

// Commit implements executor.Committer.
func (u *releaseUndo) Commit(ctx context.Context) error {
	var errs []error
	rfs := u.files()
	if u.markBad != "" {
		if err := rfs.markBad(ctx, u.base, u.markBad, u.reason); err != nil {
			errs = append(errs, fmt.Errorf("mark %s bad%s: %w", linkTarget(u.markBad), rfs.where(), err))
		}
	}
	if u.keep > 0 {
		errs = append(errs, pruneReleases(ctx, rfs, u.base, u.keep, u.back))
	}
	return errors.Join(errs...)
}

// pruneReleases removes the oldest releases beyond keep, never the current
// one nor the previous one (what a rollback goes back to).
func pruneReleases(ctx context.Context, rfs releaseFS, base string, keep int, previous string) error {
	rels, err := rfs.listReleases(ctx, base)
	if err != nil {
		return err
	}
	cur, err := rfs.readCurrent(ctx, base)
	if err != nil {
		return err
	}
	var errs []error
	for k := 0; k < len(rels)-keep; k++ {
		id := rels[k].ID
		if id == cur || id == previous {
			continue
		}
		if err := rfs.removeRelease(ctx, base, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sharedPathProblem says what is wrong with a shared path, "" if nothing:
// it must stay inside the release.
func sharedPathProblem(p string) string {
	switch {
	case p == "":
		return "is empty"
	case path.IsAbs(p) || strings.HasPrefix(p, "\\"):
		return "must be relative to the release (such as \"storage/uploads\")"
	case path.Clean(p) != p:
		return fmt.Sprintf("is not clean; write %q", path.Clean(p))
	case p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return "must name a path inside the release"
	}
	return ""
}

func validateSharedPaths(name string) validator {
	return func(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
		v, ok := knownArg(args, name)
		if !ok || !v.CanIterateElements() {
			return nil
		}
		var diags hcl.Diagnostics
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.IsNull() || !e.IsKnown() || e.Type() != cty.String {
				continue
			}
			if msg := sharedPathProblem(e.AsString()); msg != "" {
				diags = append(diags, invalidArg(rng(name), "Invalid shared path",
					fmt.Sprintf("The shared path %q %s. Shared paths are linked from BASE/shared into every release, such as [\"uploads\", \".env\"].", e.AsString(), msg)))
			}
		}
		return diags
	}
}

func validateKeep(name string) validator {
	return func(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
		v, ok := knownArg(args, name)
		if !ok {
			return nil
		}
		n, err := convert.Convert(v, cty.Number)
		if err != nil || n.IsNull() {
			return nil
		}
		bf := n.AsBigFloat()
		if i, acc := bf.Int64(); !bf.IsInt() || acc != 0 || i < 1 || i > 1000 {
			return hcl.Diagnostics{invalidArg(rng(name), "Invalid release count",
				fmt.Sprintf("The %s argument must be a whole number from 1 to 1000, but it is %s. Give how many releases to keep, such as 5; the current and the previous release are always kept.", name, bf.Text('g', -1)))}
		}
		return nil
	}
}

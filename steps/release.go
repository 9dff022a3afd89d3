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
		NotOnHosts: notOnHostsRelease,
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
		NotOnHosts: notOnHostsRelease,
	}
}

type releaseStep struct {
	from, base string
	shared     []string
	keep       int

	// id is chosen once, by whichever of InFlightRecord and Do runs
	// first, so that the journal names the directory Do creates.
	id  string
	now func() time.Time
}

func (b *builder) buildRelease(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &releaseStep{keep: defaultKeepReleases, now: time.Now}
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
	prev, err := readCurrent(s.base)
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
	base := s.base
	if err := checkReleaseSource(from, base); err != nil {
		return nil, err
	}
	// A missing base is refused rather than created, as rsync's target:
	// a typo in `to` should not deploy to a fresh path that no unit runs.
	if fi, err := os.Stat(base); err != nil {
		return nil, fmt.Errorf("release base: %w (create it, and point the unit's WorkingDirectory at %s)", err, filepath.Join(base, currentLink))
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("release base %q is not a directory", base)
	}
	prev, err := readCurrent(base)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{releasesDir, sharedDir} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return nil, err
		}
	}
	id := s.releaseID()
	partial := partialPath(base, id)
	if err := os.RemoveAll(partial); err != nil {
		return nil, err
	}
	logf(env, "copy %s to %s", from, releasePath(base, id))
	if err := copyTree(ctx, from, partial); err != nil {
		// Nothing a service sees changed; the partial copy is clutter.
		_ = os.RemoveAll(partial)
		return nil, fmt.Errorf("copy %s: %w", from, err)
	}
	for _, p := range s.shared {
		if err := linkShared(base, partial, filepath.FromSlash(p)); err != nil {
			_ = os.RemoveAll(partial)
			return nil, err
		}
	}
	// The files reach the disk before anything points at them, and the
	// release gets its name only when it is whole.
	if err := syncFS(partial); err != nil {
		_ = os.RemoveAll(partial)
		return nil, fmt.Errorf("sync %s: %w", partial, err)
	}
	if err := os.Rename(partial, releasePath(base, id)); err != nil {
		_ = os.RemoveAll(partial)
		return nil, err
	}
	u := &releaseUndo{base: base, back: prev, discard: id, keep: s.keep}
	if err := syncDir(filepath.Join(base, releasesDir)); err != nil {
		return u, err
	}
	if err := switchCurrent(base, id); err != nil {
		return u, err
	}
	if prev == "" {
		logf(env, "%s -> %s (first release)", filepath.Join(base, currentLink), linkTarget(id))
	} else {
		logf(env, "%s -> %s (was %s)", filepath.Join(base, currentLink), linkTarget(id), linkTarget(prev))
	}
	return u, nil
}

// checkReleaseSource refuses a source that is missing, not a directory,
// empty (a wrong --deploy-path must not become a release that serves
// nothing), or that overlaps the base (the copy would copy itself).
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
	if within(from, base) || within(base, from) {
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
}

func (b *builder) buildSwitchRelease(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	s := &switchReleaseStep{markBad: true}
	s.base, _ = r.str("to")
	s.release, _ = r.str("release")
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
	prev, err := readCurrent(s.base)
	if err != nil {
		return executor.UndoRecord{}, false
	}
	return (&releaseUndo{base: s.base, back: prev}).Record(), true
}

func (s *switchReleaseStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	prev, err := readCurrent(s.base)
	if err != nil {
		return nil, err
	}
	if s.expect != "" && prev != s.expect {
		return nil, fmt.Errorf("%s is %s, not %s as planned: another deploy ran meanwhile; look again with `rollout releases`", filepath.Join(s.base, currentLink), orNone(prev), s.expect)
	}
	if prev == s.release {
		return nil, fmt.Errorf("release %s is already current", s.release)
	}
	if fi, err := os.Stat(releasePath(s.base, s.release)); err != nil {
		return nil, fmt.Errorf("release %s: %w", s.release, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("release %s is not a directory", releasePath(s.base, s.release))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u := &releaseUndo{base: s.base, back: prev}
	if s.markBad && prev != "" {
		runID := ""
		if env != nil {
			runID = env.RunID
		}
		u.markBad = prev
		u.reason = fmt.Sprintf("rolled back to %s by run %s at %s", s.release, runID, time.Now().UTC().Format(time.RFC3339))
	}
	if err := switchCurrent(s.base, s.release); err != nil {
		return u, err
	}
	logf(env, "%s -> %s (was %s)", filepath.Join(s.base, currentLink), linkTarget(s.release), orNone(prev))
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
	return b.String()
}

func (u *releaseUndo) Undo(ctx context.Context, env *executor.Env) error {
	cur, err := readCurrent(u.base)
	if err != nil {
		return err
	}
	if cur != u.back {
		if u.back != "" {
			if _, err := os.Stat(releasePath(u.base, u.back)); err != nil {
				return fmt.Errorf("cannot point %s back at %s: %w", filepath.Join(u.base, currentLink), linkTarget(u.back), err)
			}
		}
		if err := switchCurrent(u.base, u.back); err != nil {
			return err
		}
		logf(env, "%s -> %s", filepath.Join(u.base, currentLink), orNone(u.back))
	}
	if u.discard != "" && u.discard != u.back {
		if err := removeRelease(u.base, u.discard); err != nil {
			return fmt.Errorf("%s is back, but removing the failed release failed: %w", filepath.Join(u.base, currentLink), err)
		}
	}
	return nil
}

// Commit implements executor.Committer.
func (u *releaseUndo) Commit(ctx context.Context) error {
	var errs []error
	if u.markBad != "" {
		if err := markBad(u.base, u.markBad, u.reason); err != nil {
			errs = append(errs, fmt.Errorf("mark %s bad: %w", linkTarget(u.markBad), err))
		}
	}
	if u.keep > 0 {
		errs = append(errs, pruneReleases(u.base, u.keep, u.back))
	}
	return errors.Join(errs...)
}

// pruneReleases removes the oldest releases beyond keep, never the current
// one nor the previous one (what a rollback goes back to).
func pruneReleases(base string, keep int, previous string) error {
	rels, err := listReleases(base)
	if err != nil {
		return err
	}
	cur, err := readCurrent(base)
	if err != nil {
		return err
	}
	var errs []error
	for k := 0; k < len(rels)-keep; k++ {
		id := rels[k].ID
		if id == cur || id == previous {
			continue
		}
		if err := removeRelease(base, id); err != nil {
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

package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/planner"
)

// What `rollout rollback` and `rollout releases` need: where each
// service's releases are, which one is current and which are bad, and the
// pipeline that switches a service back and restarts it. The pipeline is
// made of ordinary steps, so the executor runs a rollback as it runs any
// plan: locks, journal, events, health checks, and the rollback of the
// rollback when the old release does not come up either.

// Release is one release directory of a service.
type Release struct {
	ID      string `json:"id"`
	Current bool   `json:"current"`
	// Bad is the marker's text: why `rollout rollback` left this release.
	Bad string `json:"bad,omitempty"`
}

// ReleaseBase returns the base directory (releases/, shared/, current) of
// the first release step of svc; false when svc deploys no releases.
func ReleaseBase(svc *planner.Service) (string, bool, error) {
	for _, st := range svc.Steps {
		if st.Type != TypeRelease {
			continue
		}
		r := &argReader{args: st.Args}
		to, _ := r.str("to")
		if r.err != nil {
			return "", true, r.err
		}
		base, err := releaseBaseOf(svc, to)
		return base, true, err
	}
	return "", false, nil
}

// Releases lists the releases under base, oldest first, and the id of the
// current one ("" when there is no `current`).
func Releases(base string) ([]Release, string, error) {
	return ReleasesOn(context.Background(), nil, base)
}

// ReleasesOn is Releases on host h (nil or Local: where rollout runs).
func ReleasesOn(ctx context.Context, h Host, base string) ([]Release, string, error) {
	rfs := releaseFSOn(h)
	infos, err := rfs.listReleases(ctx, base)
	if err != nil {
		return nil, "", err
	}
	cur, err := rfs.readCurrent(ctx, base)
	if err != nil {
		return nil, "", err
	}
	out := make([]Release, len(infos))
	for i, r := range infos {
		out[i] = Release{ID: r.ID, Current: r.ID == cur, Bad: r.Bad}
	}
	return out, cur, nil
}

// RollbackTarget is what a rollback does to one service: switch Base's
// `current` from release From to release To.
type RollbackTarget struct {
	Service string
	Base    string
	From    string
	To      string
}

// ChooseRollback picks the release to go back to under base: the newest
// release older than the current one that is not marked bad, or, when to
// is set, the release whose id is to or starts with it.
func ChooseRollback(base, to string) (RollbackTarget, error) {
	return ChooseRollbackOn(context.Background(), nil, base, to)
}

// ChooseRollbackOn is ChooseRollback for releases on host h (nil or
// Local: where rollout runs).
func ChooseRollbackOn(ctx context.Context, h Host, base, to string) (RollbackTarget, error) {
	rels, cur, err := ReleasesOn(ctx, h, base)
	if err != nil {
		return RollbackTarget{}, err
	}
	t := RollbackTarget{Base: base, From: cur}
	if cur == "" {
		return t, fmt.Errorf("%s/current does not exist%s: nothing is deployed as a release yet", base, where(h))
	}
	if to != "" {
		var matches []Release
		for _, r := range rels {
			if r.ID == to {
				matches = []Release{r}
				break
			}
			if strings.HasPrefix(r.ID, to) {
				matches = append(matches, r)
			}
		}
		switch {
		case len(matches) == 0:
			return t, fmt.Errorf("no release %q in %s/releases; list them with `rollout releases`", to, base)
		case len(matches) > 1:
			ids := make([]string, len(matches))
			for i, m := range matches {
				ids[i] = m.ID
			}
			return t, fmt.Errorf("`--to %s` matches %d releases (%s): give more of the id", to, len(matches), strings.Join(ids, ", "))
		case matches[0].Current:
			return t, fmt.Errorf("release %s is already current", matches[0].ID)
		case matches[0].Bad != "":
			return t, fmt.Errorf("release %s is marked bad (%s); remove %s to roll back to it", matches[0].ID, matches[0].Bad, releasePath(base, matches[0].ID)+badSuffix)
		}
		t.To = matches[0].ID
		return t, nil
	}
	for k := len(rels) - 1; k >= 0; k-- {
		r := rels[k]
		if r.ID < cur && r.Bad == "" {
			t.To = r.ID
			return t, nil
		}
	}
	return t, fmt.Errorf("no good release before %s in %s/releases to roll back to (earlier ones are missing or marked bad); list them with `rollout releases`", cur, base)
}

// rollbackTail are the step types of a service's own pipeline that a
// rollback keeps: its restart and what verifies it, from the first
// restart on. A pre-check would fail on the release being left, and
// deploys, backups and migrations are not part of going back.
var rollbackTail = []string{TypeReloadOrRestart, TypeRestart, TypeHealthCheck, TypeStabilize}

// RollbackPipeline replaces svc's steps with the rollback of t: switch
// `current` to t.To (expecting t.From, and marking t.From bad once the
// service is healthy), then the service's own restart, verify and settle
// steps, or a plain restart and health check when its pipeline has none.
func RollbackPipeline(svc *planner.Service, t RollbackTarget) error {
	if svc == nil || t.Base == "" || !validReleaseID(t.To) {
		return errors.New("steps: rollback pipeline without a service or target")
	}
	types := Types()
	step := func(name, typ string, args map[string]cty.Value) *planner.Step {
		st := types[typ]
		ps := &planner.Step{Name: name, Type: typ, Args: args, Check: st.Check, Rollback: st.Rollback, DeclRange: svc.DeclRange}
		if st.Needs != nil {
			// What preflight checks, as the planner fills it in.
			ps.Needs = st.Needs(args, svc)
		}
		return ps
	}
	out := []*planner.Step{step("switch", TypeSwitchRelease, map[string]cty.Value{
		"to":       cty.StringVal(t.Base),
		"release":  cty.StringVal(t.To),
		"expect":   cty.StringVal(t.From),
		"mark_bad": cty.True,
	})}
	restarted := false
	for _, st := range svc.Steps {
		if !restarted && st.Type != TypeReloadOrRestart && st.Type != TypeRestart {
			continue
		}
		if slices.Contains(rollbackTail, st.Type) {
			restarted = true
			out = append(out, st)
		}
	}
	if !restarted {
		out = append(out, step("restart", TypeRestart, map[string]cty.Value{}), step("verify", TypeHealthCheck, map[string]cty.Value{}))
	}
	svc.Steps = out
	return nil
}

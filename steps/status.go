package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// ProbeHealth runs h's check once, as `rollout status` does: one probe,
// no retries, bounded by h's timeout (planner.DefaultHealthTimeout when unset) and by ctx.
func ProbeHealth(ctx context.Context, h *planner.Health, unit string, sd Backend) error {
	probe, _, err := prober(h, unit, sd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.WithDefaults().Timeout)
	defer cancel()
	return probe(ctx)
}

// CurrentRelease returns the release a service whose working directory is
// workingDir runs, when it deploys with the release step: the name of the
// directory BASE/current points at, for the `current` link that is
// workingDir or one of its parents. It returns "" when there is no such
// link (the service is deployed in place, or not yet released).
//
// It reads the local file system; CurrentReleaseOn reads a host's.
func CurrentRelease(workingDir string) string {
	if workingDir == "" {
		return ""
	}
	dir := filepath.Clean(workingDir)
	for {
		if filepath.Base(dir) == currentLink {
			if target, err := os.Readlink(dir); err == nil {
				return filepath.Base(strings.TrimSuffix(target, "/"))
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// stateChangeTime converts systemd's StateChangeTimestamp (µs since the
// epoch, 0 when never) to a time.
func stateChangeTime(p map[string]any) time.Time {
	if v, ok := p["StateChangeTimestamp"].(uint64); ok && v > 0 {
		return time.UnixMicro(int64(v))
	}
	return time.Time{}
}

// CurrentReleaseOn is CurrentRelease for an instance on host h (nil or
// Local: where rollout runs): the link is read on the host.
func CurrentReleaseOn(ctx context.Context, h Host, workingDir string) string {
	if h == nil || h.Name() == "" {
		return CurrentRelease(workingDir)
	}
	if workingDir == "" {
		return ""
	}
	// The first ancestor named current, found in the path's text: the
	// host's links are not followed from here.
	for dir := filepath.Clean(workingDir); ; dir = filepath.Dir(dir) {
		if filepath.Base(dir) == currentLink {
			out, err := hostFS{h: h}.run(ctx, `exec readlink -- "$1"`, dir)
			if err != nil {
				return ""
			}
			return filepath.Base(strings.TrimSuffix(strings.TrimSpace(out), "/"))
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}

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
// It reads the local filesystem; a service on a remote host needs the
// host's file access (hosts, later).
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

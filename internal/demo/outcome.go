package demo

import (
	"os"
	"strings"

	"github.com/rollout-sh/rollout/executor"
)

// Outcome reads the last run in the events log at eventsPath back: service
// name → what happened to it ("restarted on v2", "failed, rolled back to
// v1", "skipped: sso.api failed", ...). A service the run never got to is
// absent; an unreadable log gives an empty map.
func Outcome(eventsPath string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(eventsPath)
	if err != nil {
		return out
	}
	defer f.Close()
	events, _, err := executor.ReadEvents(f)
	if err != nil {
		return out
	}
	runID := ""
	for _, e := range events {
		if e.Event == "RUN_START" {
			runID = e.RunID
		}
	}
	for _, e := range events {
		if e.RunID != runID || e.Service == "" {
			continue
		}
		switch e.Event {
		case "SERVICE_RESTART_SUCCESS":
			out[e.Service] = "restarted on v2"
		case "SERVICE_RESTART_FAILED":
			// The rollback's own event says more, whichever comes first.
			if !strings.HasPrefix(out[e.Service], "failed") {
				out[e.Service] = "failed"
			}
		case "ROLLBACK_SUCCESS":
			out[e.Service] = "failed, rolled back to v1"
		case "ROLLBACK_FAILED":
			out[e.Service] = "failed, ROLLBACK FAILED"
		case "SERVICE_SKIPPED":
			if e.Cause != "" {
				out[e.Service] = "skipped: " + e.Cause + " failed"
			} else {
				out[e.Service] = "skipped"
			}
		}
	}
	return out
}

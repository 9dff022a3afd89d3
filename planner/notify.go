package planner

import (
	"slices"
	"time"

	"github.com/rollout-sh/rollout/dsl"
)

// Notification fallbacks when the notify block does not set them. A run's
// end waits for its last notifications, so both stay small.
const (
	fallbackNotifyTimeout = 5 * time.Second
	fallbackNotifyRetries = 2
)

func notifications(blocks []*dsl.Notify) []Notification {
	var out []Notification
	for _, n := range blocks {
		if n == nil {
			continue
		}
		nf := Notification{
			Kind:           n.Kind,
			Name:           n.Name,
			URL:            n.URL,
			URLFromEnv:     n.URLFromEnv,
			Events:         slices.Clone(n.Events),
			HeadersFromEnv: n.HeadersFromEnv,
			Timeout:        fallbackNotifyTimeout,
			Retries:        fallbackNotifyRetries,
		}
		if n.TimeoutSet {
			nf.Timeout = n.Timeout
		}
		if n.RetriesSet {
			nf.Retries = n.Retries
		}
		out = append(out, nf)
	}
	return out
}

// Target says where a notification goes, for plan show: its URL, or the
// environment variable that holds it.
func (n Notification) Target() string {
	if n.URLFromEnv != "" {
		return "$" + n.URLFromEnv
	}
	return n.URL
}

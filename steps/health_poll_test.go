package steps

import (
	"testing"
	"time"
)

func TestNextPollDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name            string
		delay, maxDelay time.Duration
		fast            bool
		want            time.Duration
	}{
		{"doubles while fast", 10 * ms, time.Second, true, 20 * ms},
		{"capped at 50ms while fast", 40 * ms, time.Second, true, 50 * ms},
		{"stays at 50ms while fast", 50 * ms, time.Second, true, 50 * ms},
		{"a shorter interval caps it while fast", 20 * ms, 30 * ms, true, 30 * ms},
		{"backs off after the fast window", 50 * ms, time.Second, false, 100 * ms},
		{"capped at the interval after it", 800 * ms, time.Second, false, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextPollDelay(tt.delay, tt.maxDelay, tt.fast); got != tt.want {
				t.Errorf("nextPollDelay(%s, %s, %v) = %s, want %s", tt.delay, tt.maxDelay, tt.fast, got, tt.want)
			}
		})
	}
}

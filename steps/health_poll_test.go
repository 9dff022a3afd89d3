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
		{"doubles while fast", 4 * ms, time.Second, true, 8 * ms},
		{"capped at 10ms while fast", 8 * ms, time.Second, true, 10 * ms},
		{"stays at 10ms while fast", 10 * ms, time.Second, true, 10 * ms},
		{"a shorter interval caps it while fast", 5 * ms, 8 * ms, true, 8 * ms},
		{"backs off after the fast window", 20 * ms, time.Second, false, 40 * ms},
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

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
		{"doubles while fast", 5 * ms, time.Second, true, 10 * ms},
		{"capped at 20ms while fast", 10 * ms, time.Second, true, 20 * ms},
		{"stays at 20ms while fast", 20 * ms, time.Second, true, 20 * ms},
		{"a shorter interval caps it while fast", 10 * ms, 15 * ms, true, 15 * ms},
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

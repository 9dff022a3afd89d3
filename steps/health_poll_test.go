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

// TestPauseAroundTheExpectedMoment: with a moment from earlier runs the
// poll probes sparsely before it, densely around it, and as without
// history after it; never past the window's start, never a zero pause.
func TestPauseAroundTheExpectedMoment(t *testing.T) {
	t0 := time.Unix(1000, 0)
	expect := t0.Add(250 * time.Millisecond)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		now   time.Duration // since t0
		delay time.Duration // the adaptive pause
		want  time.Duration
	}{
		{0, ms(10), expectSparse},                     // long before: sparse
		{ms(220), ms(10), ms(10)},                     // the window opens in 10 ms: wait just that
		{ms(229), ms(10), expectDense},                // in less than a dense pause: dense
		{ms(240), ms(10), expectDense},                // in the window
		{ms(265), ms(10), expectDense},                // still (expectLag after)
		{ms(275), ms(10), ms(10)},                     // after it: as without history
		{0, ms(400), ms(230)},                         // a longer adaptive pause stops at the window
		{ms(300), ms(800), ms(800)},                   // long after: the adaptive pause
		{-ms(5000), 2 * time.Second, time.Second * 2}, // far before, slow poll: the adaptive pause
	}
	for _, tt := range tests {
		if got := pauseAround(t0.Add(tt.now), expect, tt.delay); got != tt.want {
			t.Errorf("pauseAround(t0+%v, delay %v) = %v, want %v", tt.now, tt.delay, got, tt.want)
		}
	}
}

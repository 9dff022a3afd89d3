package main

import (
	"testing"
	"time"
)

// The ideal client sends first the service with the longest chain still
// ahead of it: its own restart and settle plus its heaviest dependent's.
func TestIdealClientRanksByLongestRemainingChain(t *testing.T) {
	ms := time.Millisecond
	svcs := []*benchService{
		{Name: "a"}, {Name: "b"},
		{Name: "a2", Needs: []string{"a"}},
		{Name: "ab", Needs: []string{"a", "b"}},
		{Name: "end", Needs: []string{"ab"}},
	}
	own := map[string]time.Duration{"a": 200 * ms, "b": 300 * ms, "a2": 900 * ms, "ab": 100 * ms, "end": 100 * ms}
	c := newIdealClient(nil, svcs, own)
	want := map[string]time.Duration{
		"end": 100*ms + settle,
		"ab":  200*ms + 2*settle,
		"a2":  900*ms + settle,
		"a":   200*ms + settle + 900*ms + settle, // through a2, not ab
		"b":   300*ms + settle + 200*ms + 2*settle,
	}
	for name, w := range want {
		if got := c.remaining[name]; got != w {
			t.Errorf("remaining[%s] = %s, want %s", name, got, w)
		}
	}
	if c.remaining["a"] <= c.remaining["b"] {
		t.Errorf("a (its chain through a2 is longer) should go before b: %s vs %s", c.remaining["a"], c.remaining["b"])
	}
}

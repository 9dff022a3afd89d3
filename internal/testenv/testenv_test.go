package testenv

import "testing"

func TestCI(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want bool
	}{{"true", true}, {"1", true}, {"TRUE", true}, {"True", true}, {"", false}, {"0", false}, {"false", false}} {
		t.Setenv("CI", tt.env)
		if got := CI(); got != tt.want {
			t.Errorf("CI=%q: CI() = %v, want %v", tt.env, got, tt.want)
		}
	}
}

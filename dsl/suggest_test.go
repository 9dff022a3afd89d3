package dsl

import "testing"

func TestSuggest(t *testing.T) {
	candidates := []string{"sso.postgresql", "sso.redis", "sso.api", "merchant.api"}
	tests := []struct {
		name string
		want string
	}{
		{"sso.postgresq", "sso.postgresql"},
		{"sso.apl", "sso.api"},
		{"sso.redsi", "sso.redis"},
		{"merchant", "merchant.api"}, // prefix
		{"billing.api", ""},
		{"sso.api", ""}, // an exact match is not a suggestion
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Suggest(tt.name, candidates); got != tt.want {
				t.Errorf("Suggest(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"é", "e", 1},
	}
	for _, tt := range tests {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

package dsl

import (
	"fmt"
	"strings"
)

// Suggest returns the candidate closest to name when it is close enough to
// be a likely typo (edit distance at most 2, or one is a prefix of the
// other), else "". Ties go to the earlier candidate, so the result only
// depends on the candidates' order.
func Suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if c == name || c == "" {
			continue
		}
		d := levenshtein(name, c)
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" || name == "" {
		return best
	}
	for _, c := range candidates {
		if c != "" && c != name && (strings.HasPrefix(c, name) || strings.HasPrefix(name, c)) {
			return c
		}
	}
	return ""
}

// DidYouMean is Suggest phrased as a sentence to append to a Detail, with a
// leading space, or "" when nothing is close.
func DidYouMean(name string, candidates []string) string {
	if s := Suggest(name, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// levenshtein is the edit distance between a and b, by runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

package dag

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// build makes a graph from vertices (added first, in order) and edges "a>b".
func build(vertices []string, edges [][2]string) *Graph {
	g := New(len(vertices))
	for _, v := range vertices {
		g.Add(v)
	}
	for _, e := range edges {
		g.Connect(e[0], e[1])
	}
	return g
}

func TestGraphEdges(t *testing.T) {
	g := build([]string{"a", "b", "c"}, [][2]string{{"a", "c"}, {"a", "b"}, {"a", "c"}, {"b", "c"}})
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"down a keeps connect order, no duplicate", g.DirectDependents("a"), []string{"c", "b"}},
		{"up c", g.DirectDependencies("c"), []string{"a", "b"}},
		{"down c", g.DirectDependents("c"), []string{}},
		{"unknown vertex", g.DirectDependents("zz"), nil},
		{"vertices", g.Vertices(), []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	if g.Add("a") {
		t.Error("Add of an existing vertex reported true")
	}
	if !g.HasEdge("a", "b") || g.HasEdge("b", "a") {
		t.Error("HasEdge wrong")
	}
}

func TestCycles(t *testing.T) {
	tests := []struct {
		name     string
		vertices []string
		edges    [][2]string
		want     [][]string
	}{
		{"acyclic", []string{"a", "b", "c"}, [][2]string{{"a", "b"}, {"b", "c"}, {"a", "c"}}, nil},
		{"self loop", []string{"a", "b"}, [][2]string{{"a", "b"}, {"b", "b"}}, [][]string{{"b"}}},
		{"three node", []string{"x", "a", "b", "c"}, [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}, {"x", "a"}}, [][]string{{"a", "b", "c"}}},
		{"starts at first added member", []string{"c", "b", "a"}, [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}}, [][]string{{"c", "a", "b"}}},
		{"two cycles reported together", []string{"a", "b", "c", "d", "e"}, [][2]string{{"d", "e"}, {"e", "d"}, {"a", "b"}, {"b", "a"}, {"c", "c"}}, [][]string{{"a", "b"}, {"c"}, {"d", "e"}}},
		{"shortest way back", []string{"a", "b", "c", "d"}, [][2]string{{"a", "b"}, {"b", "c"}, {"c", "d"}, {"d", "a"}, {"b", "a"}}, [][]string{{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := build(tt.vertices, tt.edges).Cycles()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Cycles() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTopologicalOrder(t *testing.T) {
	priority := map[string]int{"a": 0, "b": 1, "c": 2, "d": 3}
	byPriority := func(a, b string) bool { return priority[a] < priority[b] }
	tests := []struct {
		name     string
		vertices []string
		edges    [][2]string
		less     func(a, b string) bool
		want     []string
		wantErr  error
	}{
		{"insertion order ties", []string{"d", "c", "b", "a"}, nil, nil, []string{"d", "c", "b", "a"}, nil},
		{"priority ties", []string{"d", "c", "b", "a"}, nil, byPriority, []string{"a", "b", "c", "d"}, nil},
		{"dependencies first", []string{"a", "b", "c", "d"}, [][2]string{{"d", "a"}, {"c", "b"}}, byPriority, []string{"c", "b", "d", "a"}, nil},
		{"cycle", []string{"a", "b"}, [][2]string{{"a", "b"}, {"b", "a"}}, nil, nil, ErrCycle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := build(tt.vertices, tt.edges).TopologicalOrder(tt.less)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWavesAndReach(t *testing.T) {
	// The reference's examples: postgres, redis → api → merchant → marketplace; api → marketplace.
	g := build(
		[]string{"pg", "redis", "api", "merchant", "market", "lonely"},
		[][2]string{{"pg", "api"}, {"redis", "api"}, {"api", "merchant"}, {"merchant", "market"}, {"api", "market"}},
	)
	waves, err := g.Waves()
	if err != nil {
		t.Fatal(err)
	}
	wantWaves := [][]string{{"pg", "redis", "lonely"}, {"api"}, {"merchant"}, {"market"}}
	if !reflect.DeepEqual(waves, wantWaves) {
		t.Errorf("Waves() = %q, want %q", waves, wantWaves)
	}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"dependents of redis", g.DependentsOf("redis"), []string{"api", "merchant", "market"}},
		{"dependencies of market", g.DependenciesOf("market"), []string{"pg", "redis", "api", "merchant"}},
		{"dependents of leaf", g.DependentsOf("market"), nil},
		{"unknown", g.DependenciesOf("nope"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestCriticalPath(t *testing.T) {
	weights := map[string]time.Duration{"pg": 5 * time.Second, "redis": 10 * time.Second, "api": time.Second, "merchant": time.Second, "market": 3 * time.Second, "lonely": 20 * time.Second}
	tests := []struct {
		name      string
		vertices  []string
		edges     [][2]string
		wantPath  []string
		wantTotal time.Duration
	}{
		{"empty", nil, nil, nil, 0},
		{"longest chain wins", []string{"pg", "redis", "api", "merchant", "market"},
			[][2]string{{"pg", "api"}, {"redis", "api"}, {"api", "merchant"}, {"merchant", "market"}, {"api", "market"}},
			[]string{"redis", "api", "merchant", "market"}, 15 * time.Second},
		{"heavy single vertex", []string{"pg", "api", "lonely"}, [][2]string{{"pg", "api"}}, []string{"lonely"}, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, total, err := build(tt.vertices, tt.edges).CriticalPath(func(v string) time.Duration { return weights[v] })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(path, tt.wantPath) || total != tt.wantTotal {
				t.Errorf("got %q %v, want %q %v", path, total, tt.wantPath, tt.wantTotal)
			}
		})
	}
}

// TestRandomDAGs checks on random acyclic graphs that the order puts every
// vertex after its dependencies, that waves are longest-path depths and that
// no cycle is reported.
func TestRandomDAGs(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 42))
		n := 1 + r.IntN(40)
		g := New(n)
		// Vertices are added in a shuffled order so that insertion order is
		// not already a topological order.
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("v%d", i)
		}
		for _, i := range r.Perm(n) {
			g.Add(names[i])
		}
		for i := 1; i < n; i++ {
			for range r.IntN(4) {
				g.Connect(names[r.IntN(i)], names[i])
			}
		}
		if c := g.Cycles(); c != nil {
			t.Fatalf("seed %d: cycles %q in a DAG", seed, c)
		}
		order, err := g.TopologicalOrder(func(a, b string) bool { return a > b })
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(order) != n {
			t.Fatalf("seed %d: order has %d vertices, want %d", seed, len(order), n)
		}
		pos := map[string]int{}
		for i, v := range order {
			pos[v] = i
		}
		waves, err := g.Waves()
		if err != nil {
			t.Fatal(err)
		}
		depth := map[string]int{}
		for d, wave := range waves {
			for _, v := range wave {
				depth[v] = d
			}
		}
		for _, v := range order {
			maxUp := -1
			for _, dep := range g.DirectDependencies(v) {
				if pos[dep] >= pos[v] {
					t.Errorf("seed %d: %s at %d before its dependency %s at %d", seed, v, pos[v], dep, pos[dep])
				}
				maxUp = max(maxUp, depth[dep])
			}
			if depth[v] != maxUp+1 {
				t.Errorf("seed %d: %s in wave %d, want %d", seed, v, depth[v], maxUp+1)
			}
		}
		// Adding a back edge must create a reported cycle.
		if n > 1 {
			last := order[len(order)-1]
			if anc := g.DependenciesOf(last); len(anc) > 0 {
				g.Connect(last, anc[0])
				if len(g.Cycles()) == 0 {
					t.Errorf("seed %d: back edge %s → %s not reported as a cycle", seed, last, anc[0])
				}
			}
		}
	}
}

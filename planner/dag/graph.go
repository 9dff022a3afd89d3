// Package dag is a small directed graph of named vertices with the acyclic
// operations the planner needs: cycle detection, topological order, waves,
// reachability and the critical path.
//
// Vertices are strings. Every function returns its result in a deterministic
// order: vertex lists in insertion order unless documented otherwise, so that
// the same input always yields the same plan and the same diagnostics.
// The package has no execution concerns (no goroutines); the executor walks
// the graph itself.
package dag

import "slices"

// Graph is a directed graph. An edge from → to means "from comes before
// to": the planner connects dependency → dependent, so a vertex's
// descendants are everything that depends on it, directly or not, and a
// topological order lists every dependency before its dependents.
//
// The zero value is an empty graph ready to use.
type Graph struct {
	index map[string]int // vertex → insertion index
	names []string       // insertion order
	down  [][]int        // outgoing edges per vertex, in Connect order, no duplicates
	up    [][]int        // incoming edges per vertex, in Connect order, no duplicates
}

// New returns an empty graph with room for n vertices.
func New(n int) *Graph {
	return &Graph{
		index: make(map[string]int, n),
		names: make([]string, 0, n),
		down:  make([][]int, 0, n),
		up:    make([][]int, 0, n),
	}
}

// Add adds vertex v if it is not there yet and reports whether it was added.
func (g *Graph) Add(v string) bool {
	if g.index == nil {
		g.index = map[string]int{}
	}
	if _, ok := g.index[v]; ok {
		return false
	}
	g.index[v] = len(g.names)
	g.names = append(g.names, v)
	g.down = append(g.down, nil)
	g.up = append(g.up, nil)
	return true
}

func (g *Graph) id(v string) int {
	g.Add(v)
	return g.index[v]
}

// Connect adds the edge from → to, adding missing vertices. A repeated edge
// is kept once. A self-loop (from == to) is allowed; Cycles reports it.
func (g *Graph) Connect(from, to string) {
	f, t := g.id(from), g.id(to)
	if g.hasEdge(f, t) {
		return
	}
	g.down[f] = append(g.down[f], t)
	g.up[t] = append(g.up[t], f)
}

// Has reports whether v is a vertex of g.
func (g *Graph) Has(v string) bool {
	_, ok := g.index[v]
	return ok
}

// HasEdge reports whether the edge from → to exists.
func (g *Graph) HasEdge(from, to string) bool {
	f, ok1 := g.index[from]
	t, ok2 := g.index[to]
	if !ok1 || !ok2 {
		return false
	}
	return g.hasEdge(f, t)
}

// hasEdge scans the shorter of f's outgoing and t's incoming edges: in a
// dependency graph one side is nearly always short, and a scan of a few
// ints beats a map of edges in both time and memory.
func (g *Graph) hasEdge(f, t int) bool {
	if len(g.down[f]) <= len(g.up[t]) {
		return slices.Contains(g.down[f], t)
	}
	return slices.Contains(g.up[t], f)
}

// Len is the number of vertices.
func (g *Graph) Len() int { return len(g.names) }

// Vertices returns every vertex in insertion order.
func (g *Graph) Vertices() []string {
	return append([]string(nil), g.names...)
}

// DownEdges returns the targets of v's outgoing edges in Connect order.
func (g *Graph) DownEdges(v string) []string {
	i, ok := g.index[v]
	if !ok {
		return nil
	}
	return g.namesOf(g.down[i])
}

// UpEdges returns the sources of v's incoming edges in Connect order.
func (g *Graph) UpEdges(v string) []string {
	i, ok := g.index[v]
	if !ok {
		return nil
	}
	return g.namesOf(g.up[i])
}

func (g *Graph) namesOf(ids []int) []string {
	out := make([]string, len(ids))
	for k, id := range ids {
		out[k] = g.names[id]
	}
	return out
}

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

// Graph is a directed graph. An edge points from a dependency to its
// dependent: Connect(dependency, dependent) means "dependency comes
// before dependent". DependentsOf follows edges forwards, DependenciesOf
// backwards, and a topological order lists every dependency before its
// dependents. (Terraform's dag points edges the other way, dependent →
// dependency, so there following edges yields Ancestors; the names here
// say which set a call returns rather than which way it walks.)
//
// The zero value is an empty graph ready to use.
type Graph struct {
	index        map[string]int // vertex → insertion index
	names        []string       // insertion order
	dependents   [][]int        // outgoing edges (dependency → dependent) per vertex, in Connect order, no duplicates
	dependencies [][]int        // incoming edges per vertex, in Connect order, no duplicates
}

// New returns an empty graph with room for n vertices.
func New(n int) *Graph {
	return &Graph{
		index:        make(map[string]int, n),
		names:        make([]string, 0, n),
		dependents:   make([][]int, 0, n),
		dependencies: make([][]int, 0, n),
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
	g.dependents = append(g.dependents, nil)
	g.dependencies = append(g.dependencies, nil)
	return true
}

func (g *Graph) id(v string) int {
	g.Add(v)
	return g.index[v]
}

// Connect adds the edge dependency → dependent, adding missing vertices: the
// dependent comes after its dependency. A repeated edge is kept once. A
// self-loop is allowed; Cycles reports it.
func (g *Graph) Connect(dependency, dependent string) {
	f, t := g.id(dependency), g.id(dependent)
	if g.hasEdge(f, t) {
		return
	}
	g.dependents[f] = append(g.dependents[f], t)
	g.dependencies[t] = append(g.dependencies[t], f)
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
	if len(g.dependents[f]) <= len(g.dependencies[t]) {
		return slices.Contains(g.dependents[f], t)
	}
	return slices.Contains(g.dependencies[t], f)
}

// Len is the number of vertices.
func (g *Graph) Len() int { return len(g.names) }

// Vertices returns every vertex in insertion order.
func (g *Graph) Vertices() []string {
	return append([]string(nil), g.names...)
}

// DirectDependents returns the vertices with an edge from v (what depends
// on v directly), in Connect order.
func (g *Graph) DirectDependents(v string) []string {
	i, ok := g.index[v]
	if !ok {
		return nil
	}
	return g.namesOf(g.dependents[i])
}

// DirectDependencies returns the vertices with an edge to v (what v
// depends on directly), in Connect order.
func (g *Graph) DirectDependencies(v string) []string {
	i, ok := g.index[v]
	if !ok {
		return nil
	}
	return g.namesOf(g.dependencies[i])
}

func (g *Graph) namesOf(ids []int) []string {
	out := make([]string, len(ids))
	for k, id := range ids {
		out[k] = g.names[id]
	}
	return out
}

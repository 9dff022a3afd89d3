package dag

import (
	"container/heap"
	"errors"
	"time"
)

// ErrCycle is returned by the ordering functions when the graph has a
// cycle. Callers check Cycles first; after that a cycle is a bug.
var ErrCycle = errors.New("dag: graph has a cycle")

// Cycles returns every cycle of g, each as an ordered path of vertices
// v0, v1, ..., vn where each vertex has an edge to the next and vn has an
// edge back to v0 (the path does not repeat v0 at the end). A self-loop is
// the one-vertex path [v].
//
// Cycles are found as the strongly connected components (Tarjan) with more
// than one vertex, plus self-loops. Within a component the path starts at
// the member added first and follows the shortest way back to it, so
// the result is deterministic. Components are ordered by their first
// member's insertion index.
func (g *Graph) Cycles() [][]string {
	comps := g.scc()
	var out [][]string
	for _, comp := range comps {
		if len(comp) == 1 {
			v := comp[0]
			if g.hasEdge(v, v) {
				out = append(out, []string{g.names[v]})
			}
			continue
		}
		out = append(out, g.namesOf(g.cyclePath(comp)))
	}
	sortByFirst(out, g.index)
	return out
}

// sortByFirst orders cycles by the insertion index of their first vertex
// (insertion sort: there are few cycles).
func sortByFirst(cycles [][]string, index map[string]int) {
	for i := 1; i < len(cycles); i++ {
		for j := i; j > 0 && index[cycles[j][0]] < index[cycles[j-1][0]]; j-- {
			cycles[j], cycles[j-1] = cycles[j-1], cycles[j]
		}
	}
}

// cyclePath returns a shortest cycle through the lowest-index member of
// comp, staying inside comp (breadth-first search, edges in Connect order).
func (g *Graph) cyclePath(comp []int) []int {
	in := make(map[int]bool, len(comp))
	start := comp[0]
	for _, v := range comp {
		in[v] = true
		if v < start {
			start = v
		}
	}
	prev := map[int]int{}
	queue := []int{start}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range g.dependents[v] {
			if !in[w] {
				continue
			}
			if w == start {
				path := []int{v}
				for path[len(path)-1] != start {
					path = append(path, prev[path[len(path)-1]])
				}
				// path runs backwards from v to start.
				for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
					path[i], path[j] = path[j], path[i]
				}
				return path
			}
			if _, seen := prev[w]; !seen && w != start {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	// Unreachable for a strongly connected component; keep the members.
	return comp
}

// scc returns the strongly connected components of g (Tarjan's algorithm,
// iterative so that a long dependency chain cannot exhaust the stack).
func (g *Graph) scc() [][]int {
	n := len(g.names)
	const unvisited = -1
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = unvisited
	}
	var stack []int
	var comps [][]int
	next := 0

	type frame struct{ v, edge int }
	for root := 0; root < n; root++ {
		if index[root] != unvisited {
			continue
		}
		call := []frame{{v: root}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			v := f.v
			if f.edge < len(g.dependents[v]) {
				w := g.dependents[v][f.edge]
				f.edge++
				if index[w] == unvisited {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{v: w})
				} else if onStack[w] && index[w] < low[v] {
					low[v] = index[w]
				}
				continue
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				if low[v] < low[p] {
					low[p] = low[v]
				}
			}
			if low[v] == index[v] {
				var comp []int
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				comps = append(comps, comp)
			}
		}
	}
	return comps
}

// TopologicalOrder returns every vertex such that each edge's source comes
// before its target (Kahn's algorithm). Among vertices that are ready at the
// same time, the one for which less reports true comes first; a nil less
// means insertion order. It returns ErrCycle when g has a cycle.
func (g *Graph) TopologicalOrder(less func(a, b string) bool) ([]string, error) {
	ids, err := g.topo(less)
	if err != nil {
		return nil, err
	}
	return g.namesOf(ids), nil
}

func (g *Graph) topo(less func(a, b string) bool) ([]int, error) {
	n := len(g.names)
	indeg := make([]int, n)
	for v := range n {
		indeg[v] = len(g.dependencies[v])
	}
	ready := &readyHeap{names: g.names, less: less}
	for v := range n {
		if indeg[v] == 0 {
			ready.ids = append(ready.ids, v)
		}
	}
	heap.Init(ready)
	order := make([]int, 0, n)
	for ready.Len() > 0 {
		v := heap.Pop(ready).(int)
		order = append(order, v)
		for _, w := range g.dependents[v] {
			indeg[w]--
			if indeg[w] == 0 {
				heap.Push(ready, w)
			}
		}
	}
	if len(order) != n {
		return nil, ErrCycle
	}
	return order, nil
}

// readyHeap is the priority queue of Kahn's algorithm.
type readyHeap struct {
	ids   []int
	names []string
	less  func(a, b string) bool
}

func (h *readyHeap) Len() int { return len(h.ids) }
func (h *readyHeap) Less(i, j int) bool {
	a, b := h.ids[i], h.ids[j]
	if h.less != nil {
		if h.less(h.names[a], h.names[b]) {
			return true
		}
		if h.less(h.names[b], h.names[a]) {
			return false
		}
	}
	return a < b
}
func (h *readyHeap) Swap(i, j int) { h.ids[i], h.ids[j] = h.ids[j], h.ids[i] }
func (h *readyHeap) Push(x any)    { h.ids = append(h.ids, x.(int)) }
func (h *readyHeap) Pop() any {
	last := h.ids[len(h.ids)-1]
	h.ids = h.ids[:len(h.ids)-1]
	return last
}

// Depths returns each vertex's wave: 0 for a vertex without incoming edges,
// else one more than the deepest of its sources (the longest path from a
// root). It returns ErrCycle when g has a cycle.
func (g *Graph) Depths() (map[string]int, error) {
	order, err := g.topo(nil)
	if err != nil {
		return nil, err
	}
	depth := g.depths(order)
	out := make(map[string]int, len(depth))
	for v, d := range depth {
		out[g.names[v]] = d
	}
	return out, nil
}

func (g *Graph) depths(order []int) []int {
	depth := make([]int, len(g.names))
	for _, v := range order {
		for _, w := range g.dependents[v] {
			if depth[v]+1 > depth[w] {
				depth[w] = depth[v] + 1
			}
		}
	}
	return depth
}

// Waves groups the vertices by depth (see Depths): wave 0 holds the roots,
// wave n the vertices whose longest path from a root has n edges. Within a
// wave vertices keep insertion order. It returns ErrCycle when g has a cycle.
func (g *Graph) Waves() ([][]string, error) {
	order, err := g.topo(nil)
	if err != nil {
		return nil, err
	}
	depth := g.depths(order)
	var waves [][]string
	for v, d := range depth {
		for len(waves) <= d {
			waves = append(waves, nil)
		}
		waves[d] = append(waves[d], g.names[v])
	}
	return waves, nil
}

// DependentsOf returns everything that depends on v, directly or not:
// every vertex reachable from v by following edges dependency → dependent,
// i.e. everything a topological order puts after v. Not v itself (unless v
// is on a cycle); insertion order.
func (g *Graph) DependentsOf(v string) []string {
	return g.reach(v, g.dependents)
}

// DependenciesOf returns everything v depends on, directly or not: every
// vertex from which v is reachable, i.e. everything a topological order
// puts before v. Not v itself (unless v is on a cycle); insertion order.
func (g *Graph) DependenciesOf(v string) []string {
	return g.reach(v, g.dependencies)
}

func (g *Graph) reach(v string, adj [][]int) []string {
	start, ok := g.index[v]
	if !ok {
		return nil
	}
	seen := make([]bool, len(g.names))
	stack := append([]int(nil), adj[start]...)
	for len(stack) > 0 {
		w := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[w] {
			continue
		}
		seen[w] = true
		stack = append(stack, adj[w]...)
	}
	var out []string
	for id, s := range seen {
		if s {
			out = append(out, g.names[id])
		}
	}
	return out
}

// CriticalPath returns the heaviest chain of g — the path from a root to a
// leaf whose vertex weights sum highest — and that sum. With unbounded
// parallelism it is the shortest possible duration of the whole graph.
// Ties go to the end vertex added first and the edge connected first. It returns ErrCycle when g has a cycle;
// an empty graph gives nil and 0.
func (g *Graph) CriticalPath(weight func(v string) time.Duration) ([]string, time.Duration, error) {
	order, err := g.topo(nil)
	if err != nil {
		return nil, 0, err
	}
	n := len(g.names)
	if n == 0 {
		return nil, 0, nil
	}
	best := make([]time.Duration, n) // heaviest chain ending at v, v included
	prev := make([]int, n)
	for _, v := range order {
		prev[v] = -1
		var in time.Duration
		for _, p := range g.dependencies[v] {
			if prev[v] == -1 || best[p] > in {
				in, prev[v] = best[p], p
			}
		}
		best[v] = in + weight(g.names[v])
	}
	end := 0
	for v := 1; v < n; v++ {
		if best[v] > best[end] {
			end = v
		}
	}
	var path []int
	for v := end; v != -1; v = prev[v] {
		path = append(path, v)
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return g.namesOf(path), best[end], nil
}

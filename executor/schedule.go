package executor

import (
	"cmp"
	"slices"
	"time"

	"github.com/rollout-sh/rollout/planner"
)

// outcome is what became of one service in a run.
type outcome uint8

const (
	outcomePending        outcome = iota // not started yet
	outcomeRunning                       // in flight
	outcomeSucceeded                     // restarted
	outcomeFailed                        // failed, nothing to roll back
	outcomeRolledBack                    // failed and rolled back
	outcomeRollbackFailed                // failed and the rollback failed: a person must act
	outcomeSkipped                       // never started
)

func (o outcome) failed() bool {
	return o == outcomeFailed || o == outcomeRolledBack || o == outcomeRollbackFailed
}

// schedule is the coordinator's view of the DAG: which services are ready,
// how many are in flight, and the batch limits. It is used by one goroutine
// only (the coordinator), so it needs no locking. Services are addressed by
// their index in plan.Services, which is the plan order.
type schedule struct {
	services []*planner.Service
	outcome  []outcome
	// waiting counts each service's Needs that have not succeeded yet.
	waiting []int
	// dependents lists, per service, the services that need it.
	dependents [][]int
	// followers lists, per instance, the instances that come after it
	// (planner.Service.After): they wait for it to finish, whatever its
	// outcome, and are not skipped when it fails.
	followers [][]int
	// ready holds the ranks (see rank) of the services whose Needs all
	// succeeded, lowest rank first.
	ready minHeap
	// rank orders the services for starting: the longest remaining
	// critical path first, so that a wider wave than the machine (or
	// --parallel) can start at once never makes the path queue behind
	// services off it; plan order breaks ties, so runs are reproducible.
	// byRank inverts it.
	rank, byRank []int
	// class groups the ranks of equal weight (the same remaining path):
	// among ready services of one class, next prefers the one whose host
	// has the fewest instances in flight, so that with --parallel N over
	// N hosts each host has one in flight rather than one host two.
	class []int
	// hostOf is each service's host (an index into hostInFlight), -1 for
	// a service that runs where rollout runs.
	hostOf       []int
	hostInFlight []int
	// batchesOf lists the batches (indexes into batchMax) each service matches.
	batchesOf     [][]int
	batchMax      []int
	batchInFlight []int

	parallel int // 0 = unbounded
	inFlight int
	pending  int // services neither started nor skipped
	blocked  []int
}

// newSchedule orders plan's services; took is how long each took to
// restart in earlier runs (learned.service), nil for none.
func newSchedule(plan *planner.Plan, parallel int, took map[string]time.Duration) *schedule {
	n := len(plan.Services)
	s := &schedule{
		services:   plan.Services,
		outcome:    make([]outcome, n),
		waiting:    make([]int, n),
		dependents: make([][]int, n),
		followers:  make([][]int, n),
		batchesOf:  make([][]int, n),
		parallel:   max(parallel, 0),
		pending:    n,
	}
	index := make(map[string]int, n)
	for i, svc := range plan.Services {
		if _, dup := index[svc.Name]; !dup {
			index[svc.Name] = i
		}
	}
	for i, svc := range plan.Services {
		// A need that is not in the plan is not waited for: the planner
		// only lists selected services in Needs, so this is defensive. A
		// repeated need counts once.
		seen := make(map[int]bool, len(svc.Needs))
		for _, need := range svc.Needs {
			j, ok := index[need]
			if !ok || seen[j] {
				continue
			}
			seen[j] = true
			s.waiting[i]++
			s.dependents[j] = append(s.dependents[j], i)
		}
		for _, after := range svc.After {
			j, ok := index[after]
			if !ok || seen[j] {
				continue
			}
			seen[j] = true
			s.waiting[i]++
			s.followers[j] = append(s.followers[j], i)
		}
	}
	for _, b := range plan.Batches {
		if b.MaxUnavailable <= 0 {
			continue // no limit
		}
		bi := len(s.batchMax)
		s.batchMax = append(s.batchMax, b.MaxUnavailable)
		for i, svc := range plan.Services {
			if batchMatches(b, svc) {
				s.batchesOf[i] = append(s.batchesOf[i], bi)
			}
		}
	}
	s.batchInFlight = make([]int, len(s.batchMax))
	s.hostOf = make([]int, n)
	hostIndex := map[string]int{}
	for i, svc := range plan.Services {
		s.hostOf[i] = -1
		if h := svc.HostName(); h != "" {
			hi, ok := hostIndex[h]
			if !ok {
				hi = len(hostIndex)
				hostIndex[h] = hi
			}
			s.hostOf[i] = hi
		}
	}
	s.hostInFlight = make([]int, len(hostIndex))
	s.rankByRemainingPath(took)
	for i := range n {
		if s.waiting[i] == 0 {
			s.ready.push(s.rank[i])
		}
	}
	return s
}

// rankByRemainingPath sets rank and byRank. A service's remaining path is
// the heaviest chain of services from it through its dependents to the
// end of the plan, weighed first by the fixed waits its steps always
// take (the Typical estimates, e.g. stabilization windows), then by its
// number of services (every restart takes some time, unknown until it
// runs), then by how long its services took to restart in earlier runs
// (took; a service never seen counts as the median of those seen); the
// heavier path starts first, plan order breaks ties. The history only
// orders services the plan alone cannot tell apart, so a class (equal
// waits and count) stays what it was without history.
func (s *schedule) rankByRemainingPath(took map[string]time.Duration) {
	n := len(s.services)
	// A topological order (Kahn), walked backwards so that every
	// dependent is weighed before the services it needs. A service on a
	// cycle (the planner rejects them) is left out and keeps its own
	// weight.
	waiting := slices.Clone(s.waiting)
	topo := make([]int, 0, n)
	for i := range n {
		if waiting[i] == 0 {
			topo = append(topo, i)
		}
	}
	for k := 0; k < len(topo); k++ {
		for _, d := range s.dependents[topo[k]] {
			if waiting[d]--; waiting[d] == 0 {
				topo = append(topo, d)
			}
		}
	}
	waits := make([]time.Duration, n)
	count := make([]int, n)
	learned := make([]time.Duration, n)
	unseen := medianTook(s.services, took)
	for i, svc := range s.services {
		for _, st := range svc.Steps {
			waits[i] += st.Estimate.Typical
		}
		count[i] = 1
		if d, ok := took[svc.Name]; ok {
			learned[i] = d
		} else {
			learned[i] = unseen
		}
	}
	for k := len(topo) - 1; k >= 0; k-- {
		i := topo[k]
		var w, l time.Duration
		c := 0
		for _, d := range s.dependents[i] {
			w, c, l = max(w, waits[d]), max(c, count[d]), max(l, learned[d])
		}
		waits[i] += w
		count[i] += c
		learned[i] += l
	}
	s.byRank = make([]int, n)
	for i := range n {
		s.byRank[i] = i
	}
	slices.SortStableFunc(s.byRank, func(a, b int) int {
		if c := cmp.Compare(waits[b], waits[a]); c != 0 {
			return c
		}
		if c := cmp.Compare(count[b], count[a]); c != 0 {
			return c
		}
		return cmp.Compare(learned[b], learned[a])
	})
	s.rank = make([]int, n)
	s.class = make([]int, n)
	for r, i := range s.byRank {
		s.rank[i] = r
		if r > 0 {
			p := s.byRank[r-1]
			s.class[r] = s.class[r-1]
			if waits[p] != waits[i] || count[p] != count[i] {
				s.class[r]++
			}
		}
	}
}

// medianTook is the median of the earlier durations of plan's services
// that have one (0 when none has).
func medianTook(services []*planner.Service, took map[string]time.Duration) time.Duration {
	var ds []time.Duration
	for _, svc := range services {
		if d, ok := took[svc.Name]; ok {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func batchMatches(b planner.Batch, svc *planner.Service) bool {
	if slices.Contains(b.Services, svc.ServiceName()) {
		return true
	}
	if slices.Contains(b.Types, svc.Type) {
		return true
	}
	for _, tag := range svc.Tags {
		if slices.Contains(b.Tags, tag) {
			return true
		}
	}
	return false
}

// hostScan bounds how many ready services of one class next looks at
// for a less busy host, so that a wide wave costs O(1) per start.
const hostScan = 64

// next returns the first ready service in rank order that may start now
// (a slot is free and its batches are below max_unavailable), and marks it
// in flight. Among ready services of equal rank weight it takes one on
// the host with the fewest in flight (a local service counts as idle).
func (s *schedule) next() (int, bool) {
	if s.parallel > 0 && s.inFlight >= s.parallel {
		return 0, false
	}
	found, foundRank := -1, -1
	for scanned := 0; s.ready.len() > 0; {
		r := s.ready.pop()
		i := s.byRank[r]
		if !s.batchesAllow(i) {
			s.blocked = append(s.blocked, r)
			continue
		}
		if found >= 0 {
			if s.class[r] != s.class[foundRank] {
				s.blocked = append(s.blocked, r)
				break
			}
			scanned++
			if s.hostLoad(i) < s.hostLoad(found) {
				s.blocked = append(s.blocked, foundRank)
				found, foundRank = i, r
			} else {
				s.blocked = append(s.blocked, r)
			}
		} else {
			found, foundRank = i, r
		}
		if s.hostLoad(found) == 0 || scanned >= hostScan {
			break
		}
	}
	for _, r := range s.blocked {
		s.ready.push(r)
	}
	s.blocked = s.blocked[:0]
	if found < 0 {
		return 0, false
	}
	s.outcome[found] = outcomeRunning
	s.inFlight++
	s.pending--
	for _, b := range s.batchesOf[found] {
		s.batchInFlight[b]++
	}
	if h := s.hostOf[found]; h >= 0 {
		s.hostInFlight[h]++
	}
	return found, true
}

// hostLoad is how many instances are in flight on service i's host.
func (s *schedule) hostLoad(i int) int {
	if h := s.hostOf[i]; h >= 0 {
		return s.hostInFlight[h]
	}
	return 0
}

func (s *schedule) batchesAllow(i int) bool {
	for _, b := range s.batchesOf[i] {
		if s.batchInFlight[b] >= s.batchMax[b] {
			return false
		}
	}
	return true
}

// finish records the outcome of an in-flight service; a success makes the
// dependents whose Needs are now all met ready.
func (s *schedule) finish(i int, o outcome) {
	s.outcome[i] = o
	s.inFlight--
	for _, b := range s.batchesOf[i] {
		s.batchInFlight[b]--
	}
	if h := s.hostOf[i]; h >= 0 {
		s.hostInFlight[h]--
	}
	s.release(s.followers[i])
	if o != outcomeSucceeded {
		return
	}
	s.release(s.dependents[i])
}

// release counts one wait of each of ds as met, and makes ready those
// with none left.
func (s *schedule) release(ds []int) {
	for _, d := range ds {
		s.waiting[d]--
		if s.waiting[d] == 0 && s.outcome[d] == outcomePending {
			s.ready.push(s.rank[d])
		}
	}
}

// skipDependents marks every not-yet-started service that depends,
// directly or transitively, on i as skipped and returns them in plan order.
func (s *schedule) skipDependents(i int) []int {
	var skipped []int
	queue := []int{i}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, d := range s.dependents[cur] {
			if s.outcome[d] != outcomePending {
				continue
			}
			s.outcome[d] = outcomeSkipped
			s.pending--
			skipped = append(skipped, d)
			queue = append(queue, d)
			// A skipped instance is finished for the batches after it.
			s.release(s.followers[d])
		}
	}
	slices.Sort(skipped)
	return skipped
}

// gate holds each of rest back until openGate: a canary's promotion.
// Their After (the canaries) keeps them from being ready before, so none
// is in the ready heap yet.
func (s *schedule) gate(rest []int) {
	for _, i := range rest {
		s.waiting[i]++
	}
}

// openGate lets rest start (once their other waits are met).
func (s *schedule) openGate(rest []int) { s.release(rest) }

// skipGated marks the gated instances that have not started as skipped,
// with every service that depends on them, and returns them in plan order.
func (s *schedule) skipGated(rest []int) []int {
	var skipped []int
	for _, i := range rest {
		if s.outcome[i] != outcomePending {
			continue
		}
		s.outcome[i] = outcomeSkipped
		s.pending--
		skipped = append(skipped, i)
		s.release(s.followers[i])
	}
	for _, i := range slices.Clone(skipped) {
		skipped = append(skipped, s.skipDependents(i)...)
	}
	slices.Sort(skipped)
	return skipped
}

// skipRest marks every service not started yet as skipped and returns them
// in plan order.
func (s *schedule) skipRest() []int {
	var skipped []int
	for i, o := range s.outcome {
		if o == outcomePending {
			s.outcome[i] = outcomeSkipped
			skipped = append(skipped, i)
		}
	}
	s.pending = 0
	s.ready = s.ready[:0]
	return skipped
}

// minHeap is a binary min-heap of service indexes. It is hand-written
// rather than container/heap to avoid boxing every index in an interface
// (an allocation per push on large plans).
type minHeap []int

func (h minHeap) len() int { return len(h) }

func (h *minHeap) push(v int) {
	*h = append(*h, v)
	a := *h
	for c := len(a) - 1; c > 0; {
		p := (c - 1) / 2
		if a[p] <= a[c] {
			break
		}
		a[p], a[c] = a[c], a[p]
		c = p
	}
}

func (h *minHeap) pop() int {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for p := 0; ; {
		l, r, m := 2*p+1, 2*p+2, p
		if l < len(a) && a[l] < a[m] {
			m = l
		}
		if r < len(a) && a[r] < a[m] {
			m = r
		}
		if m == p {
			break
		}
		a[p], a[m] = a[m], a[p]
		p = m
	}
	*h = a
	return top
}

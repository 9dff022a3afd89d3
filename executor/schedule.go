package executor

import (
	"slices"

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
	// ready holds the services whose Needs all succeeded, lowest index
	// (plan order) first, so that runs are reproducible.
	ready minHeap
	// batchesOf lists the batches (indexes into batchMax) each service matches.
	batchesOf     [][]int
	batchMax      []int
	batchInFlight []int

	parallel int // 0 = unbounded
	inFlight int
	pending  int // services neither started nor skipped
	blocked  []int
}

func newSchedule(plan *planner.Plan, parallel int) *schedule {
	n := len(plan.Services)
	s := &schedule{
		services:   plan.Services,
		outcome:    make([]outcome, n),
		waiting:    make([]int, n),
		dependents: make([][]int, n),
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
	for i := range n {
		if s.waiting[i] == 0 {
			s.ready.push(i)
		}
	}
	return s
}

func batchMatches(b planner.Batch, svc *planner.Service) bool {
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

// next returns the first ready service in plan order that may start now
// (a slot is free and its batches are below max_unavailable), and marks it
// in flight.
func (s *schedule) next() (int, bool) {
	if s.parallel > 0 && s.inFlight >= s.parallel {
		return 0, false
	}
	found, ok := -1, false
	for s.ready.len() > 0 {
		i := s.ready.pop()
		if s.batchesAllow(i) {
			found, ok = i, true
			break
		}
		s.blocked = append(s.blocked, i)
	}
	for _, i := range s.blocked {
		s.ready.push(i)
	}
	s.blocked = s.blocked[:0]
	if !ok {
		return 0, false
	}
	s.outcome[found] = outcomeRunning
	s.inFlight++
	s.pending--
	for _, b := range s.batchesOf[found] {
		s.batchInFlight[b]++
	}
	return found, true
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
	if o != outcomeSucceeded {
		return
	}
	for _, d := range s.dependents[i] {
		s.waiting[d]--
		if s.waiting[d] == 0 && s.outcome[d] == outcomePending {
			s.ready.push(d)
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
		}
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

package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

const idealName = "ideal client (in-process)"

// idealClient is the floor under any tool on this machine: the DAG
// restarted by a client inside the benchmark that knows what no tool
// can, with none of a tool's costs.
//
//   - It knows the critical path: services whose dependencies are done
//     send their restart in the order of their longest remaining chain,
//     from the services' own restarts alone (the bound's measurements).
//   - It pays nothing of its own: no process start-up, plan, lock,
//     preflight, journal, events, reads before or after a restart; its
//     D-Bus connection is open before the clock starts.
//   - It polls each service's /ready-at every millisecond from 15 ms
//     before the moment it expects the service to listen (every 20 ms
//     before that), then waits the settle from the moment it saw it.
//
// What it still pays is what the platform costs: the restarts of a level
// going through one manager, and the services' start-ups sharing the
// CPUs. The bound has none of that (each service alone), so ideal client
// / bound is how far from the bound the machine itself keeps a run, and
// rollout / ideal client what rollout adds.
type idealClient struct {
	conn       *sdbus.Conn
	svcs       []*benchService
	own        map[string]time.Duration // restart to ready, alone
	remaining  map[string]time.Duration // own + settle down the longest chain from here
	dependents map[string][]string
}

func newIdealClient(conn *sdbus.Conn, svcs []*benchService, own map[string]time.Duration) *idealClient {
	c := &idealClient{conn: conn, svcs: svcs, own: own, remaining: map[string]time.Duration{}, dependents: map[string][]string{}}
	for _, s := range svcs {
		for _, n := range s.Needs {
			c.dependents[n] = append(c.dependents[n], s.Name)
		}
	}
	var rem func(string) time.Duration
	rem = func(v string) time.Duration {
		if d, ok := c.remaining[v]; ok {
			return d
		}
		var tail time.Duration
		for _, d := range c.dependents[v] {
			tail = max(tail, rem(d))
		}
		c.remaining[v] = own[v] + settle + tail
		return c.remaining[v]
	}
	for _, s := range svcs {
		rem(s.Name)
	}
	return c
}

// run restarts every service and returns the wall time from the first
// restart sent to the last service's settle done.
func (c *idealClient) run(ctx context.Context) (time.Duration, error) {
	byName := map[string]*benchService{}
	waiting := map[string]int{} // dependencies not yet settled
	for _, s := range c.svcs {
		byName[s.Name] = s
		waiting[s.Name] = len(s.Needs)
	}
	var (
		mu      sync.Mutex
		queued  []string // ready to send, not yet sent
		wake    = make(chan struct{}, 1)
		settled = make(chan string, len(c.svcs))
		errs    = make(chan error, len(c.svcs))
	)
	push := func(names ...string) {
		mu.Lock()
		queued = append(queued, names...)
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	// pop takes the queued service with the longest remaining chain.
	pop := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(queued) == 0 {
			return "", false
		}
		i := 0
		for j, n := range queued {
			if c.remaining[n] > c.remaining[queued[i]] {
				i = j
			}
		}
		n := queued[i]
		queued = slices.Delete(queued, i, i+1)
		return n, true
	}
	// One sender: the manager takes jobs in the order they arrive, and
	// go-systemd sends one at a time anyway.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-wake:
			}
			for {
				name, ok := pop()
				if !ok {
					break
				}
				s := byName[name]
				sent := time.Now()
				if _, err := c.conn.RestartUnitContext(ctx, s.Unit, "replace", nil); err != nil {
					errs <- fmt.Errorf("restarting %s: %w", s.Unit, err)
					return
				}
				go func() {
					if err := c.await(s, sent); err != nil {
						errs <- err
						return
					}
					settled <- s.Name
				}()
			}
		}
	}()

	t0 := time.Now()
	var roots []string
	for _, s := range c.svcs {
		if len(s.Needs) == 0 {
			roots = append(roots, s.Name)
		}
	}
	push(roots...)
	for done := 0; done < len(c.svcs); done++ {
		select {
		case name := <-settled:
			var next []string
			for _, d := range c.dependents[name] {
				if waiting[d]--; waiting[d] == 0 {
					next = append(next, d)
				}
			}
			if len(next) > 0 {
				push(next...)
			}
		case err := <-errs:
			return 0, err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return time.Since(t0), nil
}

// await polls s until a process that began listening after sent answers,
// densely around the moment its restart alone took, then waits the settle.
func (c *idealClient) await(s *benchService, sent time.Time) error {
	dense := sent.Add(c.own[s.Name] - 15*time.Millisecond)
	deadline := sent.Add(30 * time.Second)
	for {
		if at, err := readyAt(s); err == nil && at.After(sent) {
			time.Sleep(settle)
			return nil
		}
		now := time.Now()
		if now.After(deadline) {
			return fmt.Errorf("ideal client: %s not ready within 30s", s.Name)
		}
		if now.Before(dense) {
			time.Sleep(min(20*time.Millisecond, dense.Sub(now)))
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

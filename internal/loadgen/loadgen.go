// Package loadgen is the client that proves a restart was not noticed: it
// sends continuous requests through a load balancer while a rollout runs
// behind it and counts the requests that failed and those that took longer
// than a second. A proxy that queues and retries hides an outage as
// latency, so slow requests are counted apart from failed ones.
//
// It only talks to loopback addresses and stops at a bounded number of
// requests or a bounded time, whichever comes first.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options shape a load.
type Options struct {
	// URL is requested with GET; its host must be a loopback address.
	URL string
	// Workers is how many requests are in flight at once (default 4).
	Workers int
	// Pause is each worker's wait between requests (default 5 ms), so
	// that the load is continuous without saturating a small machine.
	Pause time.Duration
	// MaxRequests and MaxDuration bound the load (defaults 100000 and
	// 5 minutes); Stop ends it earlier.
	MaxRequests int
	MaxDuration time.Duration
	// Slow is the latency above which a request counts as slow (default 1 s).
	Slow time.Duration
	// Timeout gives up on one request (default 10 s); it counts as failed.
	Timeout time.Duration
	// KeepAlive reuses connections as browsers and API clients do; off,
	// every request opens a connection.
	KeepAlive bool
}

// Result is what the client saw.
type Result struct {
	Requests int // sent and finished
	OK       int // status 200
	Failed   int // a transport error, a timeout, or another status
	Slow     int // took longer than Options.Slow, whatever the outcome
	// Max is the slowest request's latency.
	Max time.Duration
	// Errors counts failures by cause ("502 Bad Gateway", "connection
	// refused"), for the report.
	Errors   map[string]int
	Duration time.Duration
}

func (r Result) String() string {
	s := fmt.Sprintf("%d requests, %d failed, %d slow (>1s), max %s, in %s",
		r.Requests, r.Failed, r.Slow, r.Max.Round(time.Millisecond), r.Duration.Round(time.Millisecond))
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s ×%d", k, r.Errors[k])
		}
		s += "; " + strings.Join(parts, ", ")
	}
	return s
}

// Load is a running load.
type Load struct {
	opts   Options
	cancel context.CancelFunc
	done   chan struct{}
	began  time.Time

	mu  sync.Mutex
	res Result
}

// Start begins sending requests. It refuses a URL that is not on loopback.
func Start(opts Options) (*Load, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("loadgen: %q is not an http:// URL", opts.URL)
	}
	if !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("loadgen: %q is not a loopback address; the load generator only talks to this machine", u.Hostname())
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Pause <= 0 {
		opts.Pause = 5 * time.Millisecond
	}
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = 100000
	}
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = 5 * time.Minute
	}
	if opts.Slow <= 0 {
		opts.Slow = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.MaxDuration)
	l := &Load{opts: opts, cancel: cancel, done: make(chan struct{}), began: time.Now()}
	l.res.Errors = map[string]int{}
	tr := &http.Transport{
		DisableKeepAlives:   !opts.KeepAlive,
		MaxIdleConnsPerHost: opts.Workers,
		DialContext:         (&net.Dialer{Timeout: opts.Timeout}).DialContext,
	}
	client := &http.Client{Transport: tr, Timeout: opts.Timeout}
	var wg sync.WaitGroup
	var sent sync.Mutex
	n := 0
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				sent.Lock()
				if n >= opts.MaxRequests {
					sent.Unlock()
					return
				}
				n++
				sent.Unlock()
				l.one(ctx, client)
				select {
				case <-ctx.Done():
				case <-time.After(opts.Pause):
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		tr.CloseIdleConnections()
		l.mu.Lock()
		l.res.Duration = time.Since(l.began)
		l.mu.Unlock()
		close(l.done)
	}()
	return l, nil
}

// one sends a request and counts it. A request cut short by Stop is not
// counted: the client gave up, not the server.
func (l *Load) one(ctx context.Context, client *http.Client) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.opts.URL, nil)
	if err != nil {
		return
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	cause := ""
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			cause = resp.Status
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		cause = errorCause(err)
	}
	d := time.Since(t0)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.Requests++
	if cause == "" {
		l.res.OK++
	} else {
		l.res.Failed++
		l.res.Errors[cause]++
	}
	if d > l.opts.Slow {
		l.res.Slow++
	}
	if d > l.res.Max {
		l.res.Max = d
	}
}

// errorCause names a transport error briefly, for grouping.
func errorCause(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	}
	return err.Error()
}

// Snapshot returns the counts so far.
func (l *Load) Snapshot() Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.res
	r.Errors = make(map[string]int, len(l.res.Errors))
	for k, v := range l.res.Errors {
		r.Errors[k] = v
	}
	if r.Duration == 0 {
		r.Duration = time.Since(l.began)
	}
	return r
}

// Stop ends the load and returns what it saw.
func (l *Load) Stop() Result {
	l.cancel()
	<-l.done
	return l.Snapshot()
}

// Done is closed when the load ended by itself (its bounds) or by Stop.
func (l *Load) Done() <-chan struct{} { return l.done }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

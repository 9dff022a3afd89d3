package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner"
)

const (
	// firstPollDelay is the first pause of the adaptive poll inside an
	// attempt; it doubles up to the interval. A restarted service usually
	// listens tens of milliseconds after its job is done, so a short first
	// pause finds it sooner than a whole interval would.
	firstPollDelay = 10 * time.Millisecond
	// A service that becomes ready is found at the next probe, so the
	// pause between probes is the detection latency. For the first
	// fastPollWindow of an attempt, when most restarted services come
	// up, the pause stays at most fastPollMax (measured by `go run
	// ./bench`: doubling straight to a 1s interval found services 130 ms
	// after they listened, at the median; a 50 ms cap ~27 ms; a 20 ms
	// cap ~11 ms, 10 ms ~6 ms: BenchmarkPollDetection). A probe of a
	// port nobody listens on yet is a refused connect (BenchmarkProbeHTTPRefused:
	// well under a millisecond), so 100 probes a second cost little.
	// After the window it doubles up to the interval, so a slow starter
	// is not probed that often for minutes.
	fastPollWindow = 5 * time.Second
)

// fastPollMax is a variable only so that BenchmarkPollDetection can
// compare caps; see fastPollWindow.
var fastPollMax = 10 * time.Millisecond

// When earlier runs say when a service became healthy (Env.Expected), the
// poll spends its probes there: every expectSparse (or the adaptive
// pause, if longer) until expectLead before that moment, every
// expectDense until expectLag after it, then as without history. A
// service ready when it was before is found ~1 ms after it listens
// instead of ~5 ms, for about as many probes; one ready much sooner than
// ever before is found at most expectSparse late.
const (
	expectSparse = 25 * time.Millisecond
	expectDense  = 2 * time.Millisecond
	expectLead   = 20 * time.Millisecond
	expectLag    = 20 * time.Millisecond
)

type expectedReadyKey struct{}

// expectReady tells the health polls under ctx when the service is
// expected to become healthy.
func expectReady(ctx context.Context, at time.Time) context.Context {
	return context.WithValue(ctx, expectedReadyKey{}, at)
}

// pauseAround is the pause after a failed probe at now, for a service
// expected healthy at expect; delay is the pause the adaptive poll would
// take.
func pauseAround(now, expect time.Time, delay time.Duration) time.Duration {
	switch window := expect.Add(-expectLead); {
	case now.Before(window):
		return min(max(delay, expectSparse), max(window.Sub(now), expectDense))
	case now.Before(expect.Add(expectLag)):
		return expectDense
	default:
		return delay
	}
}

// HealthError is a health check that failed every attempt; Err is the
// last attempt's error.
type HealthError struct {
	Kind     string
	Attempts int
	Err      error
}

func (e *HealthError) Error() string {
	return fmt.Sprintf("%s check failed %d times, last: %v", e.Kind, e.Attempts, e.Err)
}

func (e *HealthError) Unwrap() error { return e.Err }

// CheckHealth runs h against unit (sd serves the systemd kind) until it
// passes, at most h.Retries attempts. attempt, when not nil, is called
// with the number of each attempt before it starts.
//
// Timeout is the budget of one attempt, Interval the pause between
// attempts and also the longest pause of the adaptive poll within one:
// an http, tcp or systemd attempt probes again and again, first after
// 10 ms, then every 10 ms for the first 5 s, then doubling up to Interval,
// until a probe passes or the attempt's Timeout runs out. An exec attempt
// runs the command once. Zero fields (a Health not built by the planner)
// take planner.DefaultHealth's settings.
//
// The error is a *HealthError holding the attempt count and the last
// probe's error, or ctx's error when ctx ends first.
func CheckHealth(ctx context.Context, h *planner.Health, unit string, sd Backend, attempt func(n int)) error {
	if h == nil {
		return errors.New("no health check")
	}
	d := h.WithDefaults()
	timeout, retries, interval := d.Timeout, d.Retries, d.Interval
	probe, poll, err := prober(h, unit, sd)
	if err != nil {
		return err
	}

	var last error
	for n := 1; n <= retries; n++ {
		if attempt != nil {
			attempt(n)
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		if poll {
			last = pollUntil(actx, probe, interval)
		} else {
			last = probe(actx)
		}
		cancel()
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s check, attempt %d: %w (last probe: %v)", h.Kind, n, ctx.Err(), last)
		}
		if n < retries {
			if err := sleepCtx(ctx, interval); err != nil {
				return fmt.Errorf("%s check, after attempt %d: %w (last probe: %v)", h.Kind, n, err, last)
			}
		}
	}
	return &HealthError{Kind: h.Kind, Attempts: retries, Err: last}
}

// pollUntil probes until a probe passes or ctx ends, pausing 10 ms at
// first, at most fastPollMax for the first 5 s, then doubling up to maxDelay. It
// returns the last probe's error, not ctx's, since that says what was
// wrong.
//
// A probe cut short by the deadline only says it ran out of time, so the
// previous probe's error is returned instead when there was one: "503"
// says more than "no response before the timeout".
func pollUntil(ctx context.Context, probe func(context.Context) error, maxDelay time.Duration) error {
	delay := firstPollDelay
	fastUntil := time.Now().Add(fastPollWindow)
	expect, expecting := ctx.Value(expectedReadyKey{}).(time.Time)
	var previous error
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if previous != nil {
				return previous
			}
			return err
		}
		previous = err
		pause := delay
		if expecting {
			pause = pauseAround(time.Now(), expect, delay)
		}
		if sleepCtx(ctx, pause) != nil {
			return err
		}
		delay = nextPollDelay(delay, maxDelay, time.Now().Before(fastUntil))
	}
}

// nextPollDelay doubles delay, up to fastPollMax while fast (the first
// fastPollWindow of an attempt) and up to maxDelay after; never above
// maxDelay.
func nextPollDelay(delay, maxDelay time.Duration, fast bool) time.Duration {
	limit := maxDelay
	if fast {
		limit = min(maxDelay, fastPollMax)
	}
	return min(delay*2, limit)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prober returns the probe for h's kind and whether to poll it within an
// attempt.
func prober(h *planner.Health, unit string, sd Backend) (probe func(context.Context) error, poll bool, err error) {
	switch h.Kind {
	case dsl.HealthHTTP:
		if h.URL == "" {
			return nil, false, errors.New("http health check without a url")
		}
		// No keep-alive: a pooled connection to the old process would
		// hide that the restarted one is not listening yet. No proxy:
		// the check is of the service itself, usually on localhost.
		// No redirects: a redirect is the service's answer, and following
		// it would judge another page (a /health that answers 302 to a
		// /login that answers 200 is not healthy), and would make
		// expect_status = 302 impossible to meet.
		client := &http.Client{
			Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		return func(ctx context.Context) error { return probeHTTP(ctx, client, h.URL, h.ExpectStatus) }, true, nil
	case dsl.HealthTCP:
		if h.Address == "" {
			return nil, false, errors.New("tcp health check without an address")
		}
		return func(ctx context.Context) error { return probeTCP(ctx, h.Address) }, true, nil
	case dsl.HealthSystemd:
		if sd == nil {
			return nil, false, errors.New("systemd health check without a systemd connection")
		}
		if unit == "" {
			return nil, false, errors.New("systemd health check without a unit")
		}
		return func(ctx context.Context) error { return probeSystemd(ctx, sd, unit) }, true, nil
	case dsl.HealthExec:
		if len(h.Command) == 0 || h.Command[0] == "" {
			return nil, false, errors.New("exec health check without a command")
		}
		// The command runs where the unit runs: the backend of a remote
		// host knows its host.
		host := hostOfBackend(sd)
		return func(ctx context.Context) error { return probeExec(ctx, host, h.Command) }, false, nil
	}
	return nil, false, fmt.Errorf("unknown health check kind %q", h.Kind)
}

func probeHTTP(ctx context.Context, client *http.Client, url string, expect int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: no response before the attempt's timeout", url)
		}
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	want := "a 2xx status"
	if expect != 0 {
		ok = resp.StatusCode == expect
		want = fmt.Sprintf("status %d", expect)
	}
	if !ok {
		if loc := resp.Header.Get("Location"); loc != "" {
			return fmt.Errorf("GET %s: %s, a redirect to %q (not followed), want %s", url, resp.Status, loc, want)
		}
		return fmt.Errorf("GET %s: %s, want %s; body %q", url, resp.Status, want, strings.TrimSpace(string(body)))
	}
	return nil
}

func probeTCP(ctx context.Context, address string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return fmt.Errorf("connect %s: %w", address, err)
	}
	return conn.Close()
}

// probeSystemd passes when the unit is loaded and active; a service must
// also be running, or exited for a oneshot with RemainAfterExit (Debian's
// postgresql.service is one).
func probeSystemd(ctx context.Context, sd Backend, unit string) error {
	// Polled every few milliseconds: read only what is checked.
	st, err := statusOf(ctx, sd, unit, FieldActiveState|FieldSubState)
	if err != nil {
		return err
	}
	if err := st.Loaded(); err != nil {
		return fmt.Errorf("%s: %w", unit, err)
	}
	if st.ActiveState != "active" {
		return fmt.Errorf("%s is %s (%s), not active", unit, st.ActiveState, st.SubState)
	}
	if strings.HasSuffix(unit, ".service") && st.SubState != "running" && st.SubState != "exited" {
		return fmt.Errorf("%s is active but %s, not running", unit, st.SubState)
	}
	return nil
}

// probeExec runs argv on h directly (never through a shell of ours);
// exit 0 passes.
func probeExec(ctx context.Context, h Host, argv []string) error {
	var out bytes.Buffer
	var err error
	if h == nil || h.Name() == "" {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdout = &out
		cmd.Stderr = &out
		// A child that keeps the output pipe open must not outlive the
		// attempt's timeout by more than this.
		cmd.WaitDelay = time.Second
		err = cmd.Run()
	} else {
		err = h.Run(ctx, Cmd{Argv: argv, Stdout: &out, Stderr: &out})
		if err != nil {
			err = fmt.Errorf("on %s: %w", h.Name(), err)
		}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (killed at the attempt's timeout)", err)
	}
	text := strings.TrimSpace(out.String())
	if len(text) > 512 {
		text = "..." + text[len(text)-512:]
	}
	if text != "" {
		return fmt.Errorf("%s: %w; output: %s", strings.Join(argv, " "), err, text)
	}
	return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
}

// Package notify sends a run's events to the plan's notify blocks: a
// webhook (the event as JSON) or a Slack incoming webhook (a line of text).
//
// A notification must never block or fail a run. Events are handed over
// without waiting (Observe never blocks): each target has a bounded queue
// and one goroutine that delivers in order, each attempt bounded by the
// target's timeout, a few retries with backoff. A full queue drops the
// event. At the run's end Close waits for the queues to drain, up to a
// bound, and gives up on the rest. Every event that was not delivered is
// reported as a NOTIFY_FAILED event (through Options.Failed, which the CLI
// points at the events log); the run's result and exit code never change.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// Defaults of Options.
const (
	DefaultQueueSize = 64
	DefaultBackoff   = 500 * time.Millisecond
	// DefaultFlushTimeout bounds how long the end of a run waits for the
	// last notifications (the RUN_* event is usually among them).
	DefaultFlushTimeout = 10 * time.Second
)

// Options controls New. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the events waiting for each target.
	QueueSize int
	// Backoff is the wait before the first retry; it doubles for each
	// further retry.
	Backoff time.Duration
	// Client sends the requests; nil means a plain http.Client. Each
	// attempt is bounded by the target's timeout, whatever the client.
	Client *http.Client
	// LookupEnv reads the environment (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
	// Origin names the machine rollout runs on, sent with every
	// notification (os.Hostname when "").
	Origin string
	// Failed receives a NOTIFY_FAILED event for every event that was not
	// delivered. It may be called from any goroutine, never concurrently
	// with itself.
	Failed func(executor.Event)
}

// Notifier delivers events to the targets of one run.
type Notifier struct {
	opts    Options
	targets []*target
	wg      sync.WaitGroup

	failMu sync.Mutex

	mu     sync.Mutex
	closed bool
	plan   string
	// lastError remembers the last error of each service, so that the
	// text of a ROLLBACK_START can say what it rolls back from.
	lastError map[string]string
}

// target is one notify block with its queue and delivery goroutine.
type target struct {
	n       *Notifier
	cfg     planner.Notification
	events  map[string]bool
	queue   chan executor.Event
	ctx     context.Context // cancelled when the flush bound passes
	cancel  context.CancelFunc
	url     string
	headers http.Header
	// setupErr is why nothing can be sent (an unset environment
	// variable); every event then fails at once, without retries.
	setupErr error
}

// New starts a notifier for targets. With no targets it does nothing and
// costs nothing.
func New(targets []planner.Notification, opts Options) *Notifier {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Origin == "" {
		opts.Origin, _ = os.Hostname()
	}
	n := &Notifier{opts: opts, lastError: map[string]string{}}
	for _, cfg := range targets {
		ctx, cancel := context.WithCancel(context.Background())
		t := &target{
			n:      n,
			cfg:    cfg,
			events: map[string]bool{},
			queue:  make(chan executor.Event, opts.QueueSize),
			ctx:    ctx,
			cancel: cancel,
		}
		for _, e := range cfg.Events {
			t.events[e] = true
		}
		t.resolve()
		n.targets = append(n.targets, t)
		n.wg.Add(1)
		go t.run()
	}
	return n
}

// resolve reads the URL and header values from the environment.
func (t *target) resolve() {
	t.url = t.cfg.URL
	if t.cfg.URLFromEnv != "" {
		v, ok := t.n.opts.LookupEnv(t.cfg.URLFromEnv)
		if !ok || v == "" {
			t.setupErr = fmt.Errorf("environment variable %s (the URL) is not set", t.cfg.URLFromEnv)
			return
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The value is a secret: never repeat it.
			t.setupErr = fmt.Errorf("environment variable %s does not hold an http or https URL", t.cfg.URLFromEnv)
			return
		}
		t.url = v
	}
	t.headers = http.Header{}
	for _, name := range sortedKeys(t.cfg.HeadersFromEnv) {
		env := t.cfg.HeadersFromEnv[name]
		v, ok := t.n.opts.LookupEnv(env)
		if !ok || v == "" {
			t.setupErr = fmt.Errorf("environment variable %s (header %s) is not set", env, name)
			return
		}
		t.headers.Set(name, v)
	}
}

// Observe hands ev to every target that wants it. It never blocks: when a
// target's queue is full, the event is dropped for that target and
// reported as NOTIFY_FAILED.
func (n *Notifier) Observe(ev executor.Event) {
	if n == nil || len(n.targets) == 0 {
		return
	}
	n.mu.Lock()
	switch {
	case ev.Event == executor.RunStart && ev.Plan != "":
		n.plan = ev.Plan
	case ev.Error != "" && ev.Service != "" && (ev.Event == executor.StepFailed || ev.Event == executor.ServiceRestartFailed):
		n.lastError[ev.Service] = ev.Error
	}
	if ev.Plan == "" {
		ev.Plan = n.plan
	}
	if ev.Event == executor.RollbackStart && ev.Error == "" {
		ev.Error = n.lastError[ev.Service]
	}
	closed := n.closed
	n.mu.Unlock()
	for _, t := range n.targets {
		if !t.events[ev.Event] {
			continue
		}
		if closed {
			t.failed(ev, 0, errors.New("the run had already ended"))
			continue
		}
		select {
		case t.queue <- ev:
		default:
			t.failed(ev, 0, fmt.Errorf("dropped: %d notifications were already waiting", cap(t.queue)))
		}
	}
}

// Close stops taking events and waits for every queued one to be delivered
// or to fail, until ctx is done; what is still queued or in flight then is
// abandoned and reported as NOTIFY_FAILED.
func (n *Notifier) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	n.mu.Unlock()
	for _, t := range n.targets {
		close(t.queue)
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, t := range n.targets {
			t.cancel()
		}
		<-done
	}
	for _, t := range n.targets {
		t.cancel()
	}
}

// run delivers the target's events in order until its queue is closed and
// drained. Once the flush bound has passed (ctx cancelled), what remains
// fails at once.
func (t *target) run() {
	defer t.n.wg.Done()
	for ev := range t.queue {
		if t.ctx.Err() != nil {
			t.failed(ev, 0, errors.New("not delivered before rollout exited"))
			continue
		}
		if t.setupErr != nil {
			t.failed(ev, 0, t.setupErr)
			continue
		}
		attempts, err := t.deliver(ev)
		if err != nil {
			t.failed(ev, attempts, err)
		}
	}
}

// deliver sends ev with retries; it returns the attempts made and the last
// error, nil once delivered.
func (t *target) deliver(ev executor.Event) (int, error) {
	body, err := t.body(ev)
	if err != nil {
		return 0, err
	}
	backoff := t.n.opts.Backoff
	var last error
	for attempt := 1; attempt <= t.cfg.Retries+1; attempt++ {
		if attempt > 1 {
			timer := time.NewTimer(backoff)
			select {
			case <-timer.C:
			case <-t.ctx.Done():
				timer.Stop()
				return attempt - 1, fmt.Errorf("%w; then not delivered before rollout exited", last)
			}
			backoff *= 2
		}
		last = t.post(body)
		if last == nil {
			return attempt, nil
		}
		if t.ctx.Err() != nil {
			return attempt, errors.New("not delivered before rollout exited: the receiver had not answered")
		}
		var perm permanentError
		if errors.As(last, &perm) {
			return attempt, last
		}
	}
	return t.cfg.Retries + 1, last
}

// permanentError is an answer that a retry would not change (a 4xx other
// than 408 and 429).
type permanentError struct{ error }

// post makes one attempt, bounded by the target's timeout.
func (t *target) post(body []byte) error {
	timeout := t.cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("the URL cannot be used")
	}
	for k, v := range t.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rollout")
	resp, err := t.n.opts.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its message repeats the URL, which may be a secret
		}
		if errors.Is(err, context.DeadlineExceeded) && t.ctx.Err() == nil {
			return fmt.Errorf("no answer within %s", timeout)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("the receiver answered %s", resp.Status)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return permanentError{err}
	}
	return err
}

// failed reports ev as not delivered.
func (t *target) failed(ev executor.Event, attempts int, err error) {
	if t.n.opts.Failed == nil {
		return
	}
	msg := fmt.Sprintf("notify %s %q: %s not sent to %s", t.cfg.Kind, t.cfg.Name, ev.Event, t.where())
	if attempts > 0 {
		msg += fmt.Sprintf(" after %s", plural(attempts, "attempt"))
	}
	t.n.failMu.Lock()
	defer t.n.failMu.Unlock()
	t.n.opts.Failed(executor.Event{
		RunID:   ev.RunID,
		Time:    time.Now(),
		Event:   executor.NotifyFailed,
		Service: ev.Service,
		Unit:    ev.Unit,
		Error:   err.Error(),
		Message: msg,
		Cause:   ev.Event,
	})
}

// where names the receiver without the parts of its URL that may be
// secret (a Slack webhook's path is its token).
func (t *target) where() string {
	if t.cfg.URLFromEnv != "" {
		return "$" + t.cfg.URLFromEnv
	}
	u, err := url.Parse(t.url)
	if err != nil {
		return "its URL"
	}
	return u.Scheme + "://" + u.Host
}

// body is what the target receives for ev.
func (t *target) body(ev executor.Event) ([]byte, error) {
	if t.cfg.Kind == "slack" {
		return json.Marshal(struct {
			Text string `json:"text"`
		}{SlackText(ev, t.n.opts.Origin)})
	}
	return json.Marshal(WebhookBody{Event: ev, Origin: t.n.opts.Origin, Notification: t.cfg.Name})
}

// WebhookBody is the JSON a webhook receives: the event as the events log
// has it (with the plan's name on every event), the machine rollout ran
// on, and the notify block's name.
type WebhookBody struct {
	executor.Event
	Origin       string `json:"origin"`
	Notification string `json:"notification"`
}

// SlackText is the message a Slack incoming webhook receives for ev: what
// happened, to which service, the error, the plan, the machine and the run.
func SlackText(ev executor.Event, origin string) string {
	var b strings.Builder
	plan := ""
	if ev.Plan != "" {
		plan = fmt.Sprintf(" (plan *%s*)", slackEscape(ev.Plan))
	}
	svc := "*" + slackEscape(ev.Service) + "*"
	if ev.Unit != "" {
		svc += " (" + slackEscape(ev.Unit) + ")"
	}
	switch ev.Event {
	case executor.RunSuccess:
		fmt.Fprintf(&b, ":white_check_mark: rollout run succeeded%s on %s", plan, slackEscape(origin))
	case executor.RunFailed:
		fmt.Fprintf(&b, ":x: rollout run FAILED%s on %s", plan, slackEscape(origin))
	case executor.RollbackStart:
		fmt.Fprintf(&b, ":rewind: rolling back %s%s on %s", svc, plan, slackEscape(origin))
	case executor.RollbackSuccess:
		fmt.Fprintf(&b, ":leftwards_arrow_with_hook: rolled back %s%s on %s: it runs the previous version", svc, plan, slackEscape(origin))
	case executor.RollbackFailed:
		fmt.Fprintf(&b, ":rotating_light: rollback FAILED for %s%s on %s: a person must act", svc, plan, slackEscape(origin))
	default:
		fmt.Fprintf(&b, "rollout %s", ev.Event)
		if ev.Service != "" {
			b.WriteString(" " + svc)
		}
		fmt.Fprintf(&b, "%s on %s", plan, slackEscape(origin))
	}
	if ev.Error != "" {
		fmt.Fprintf(&b, "\nError: %s", slackEscape(ev.Error))
	}
	if ev.Message != "" {
		fmt.Fprintf(&b, "\n%s", slackEscape(ev.Message))
	}
	fmt.Fprintf(&b, "\nRun %s", slackEscape(ev.RunID))
	if ev.DurationMS > 0 {
		fmt.Fprintf(&b, ", %s", (time.Duration(ev.DurationMS) * time.Millisecond).String())
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Sink passes every event to the events log and then to the notifier, so a
// run notifies exactly what it records.
type Sink struct {
	executor.Sink
	Notifier *Notifier
}

// Write records ev, then hands it to the notifier (which never blocks).
func (s Sink) Write(ev executor.Event) error {
	err := s.Sink.Write(ev)
	s.Notifier.Observe(ev)
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

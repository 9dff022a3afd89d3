package notify

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// receiver is a real local HTTP server that records what it is sent.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []request
	// status answers each request; 0 means 204.
	status int
	// hang, when set, makes every request wait until the test ends.
	hang    bool
	release chan struct{}
}

type request struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{release: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.Header.Clone(), body})
		status, hang := r.status, r.hang
		r.mu.Unlock()
		if hang {
			select {
			case <-r.release:
			case <-req.Context().Done():
			}
			return
		}
		if status == 0 {
			status = http.StatusNoContent
		}
		w.WriteHeader(status)
	}))
	// Release hanging handlers before Close, which waits for them.
	t.Cleanup(func() { close(r.release); r.srv.Close() })
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// failures collects NOTIFY_FAILED events.
type failures struct {
	mu  sync.Mutex
	evs []executor.Event
}

func (f *failures) add(ev executor.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evs = append(f.evs, ev)
}

func (f *failures) list() []executor.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.evs)
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// closeWithin calls n.Close(ctx) and fails the test if it has not returned
// after a minute: a notifier that waits on its receiver would hang here.
func closeWithin(t *testing.T, n *Notifier, ctx context.Context) {
	t.Helper()
	done := make(chan struct{})
	go func() { n.Close(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return: the notifier waits on its receiver")
	}
}

func runEvents() []executor.Event {
	at := time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
	id := "20261130T230000Z-abcdef"
	return []executor.Event{
		{Time: at, RunID: id, Event: executor.RunStart, Plan: "platform", Message: "restarting 2 services"},
		{Time: at, RunID: id, Event: executor.StepFailed, Service: "sso.api", Unit: "sso-api.service", Step: "verify", Error: "GET http://localhost:3001/health: 503"},
		{Time: at, RunID: id, Event: executor.RollbackStart, Service: "sso.api", Unit: "sso-api.service", Message: "undoing 3 steps"},
		{Time: at, RunID: id, Event: executor.RollbackSuccess, Service: "sso.api", Unit: "sso-api.service", DurationMS: 1200},
		{Time: at, RunID: id, Event: executor.RunFailed, Plan: "platform", Error: "1 of 2 failed (1 rolled back), 1 succeeded", DurationMS: 4100},
	}
}

func TestWebhookDeliversEventsWithHeadersFromEnv(t *testing.T) {
	rcv := newReceiver(t)
	var fails failures
	n := New([]planner.Notification{{
		Kind: dsl.NotifyWebhook, Name: "ops", URL: rcv.srv.URL + "/hook",
		Events:         dsl.DefaultNotifyEvents,
		HeadersFromEnv: map[string]string{"Authorization": "OPS_TOKEN", "X-Team": "TEAM"},
		Timeout:        10 * time.Second, Retries: 2,
	}}, Options{LookupEnv: env(map[string]string{"OPS_TOKEN": "Bearer s3cret", "TEAM": "platform"}), Origin: "deploy-1", Failed: fails.add})
	for _, ev := range runEvents() {
		n.Observe(ev)
	}
	closeWithin(t, n, context.Background())

	if f := fails.list(); len(f) > 0 {
		t.Fatalf("NOTIFY_FAILED: %+v", f)
	}
	got := rcv.requests()
	var events []string
	for _, r := range got {
		if h := r.header.Get("Authorization"); h != "Bearer s3cret" {
			t.Errorf("Authorization = %q, want the value of $OPS_TOKEN", h)
		}
		if h := r.header.Get("X-Team"); h != "platform" {
			t.Errorf("X-Team = %q, want the value of $TEAM", h)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		events = append(events, body["event"].(string))
		if body["run_id"] != "20261130T230000Z-abcdef" || body["plan"] != "platform" || body["origin"] != "deploy-1" || body["notification"] != "ops" {
			t.Errorf("body %s: want run_id, plan, origin and notification", r.body)
		}
	}
	// RUN_START and STEP_FAILED are not in the default events; order is kept.
	want := []string{"ROLLBACK_START", "ROLLBACK_SUCCESS", "RUN_FAILED"}
	if !slices.Equal(events, want) {
		t.Fatalf("delivered %q, want %q", events, want)
	}
	var rb map[string]any
	_ = json.Unmarshal(got[0].body, &rb)
	if rb["service"] != "sso.api" || rb["unit"] != "sso-api.service" || rb["error"] != "GET http://localhost:3001/health: 503" {
		t.Errorf("ROLLBACK_START body %s: want the service, unit and the error it rolls back from", got[0].body)
	}
}

func TestSlackBody(t *testing.T) {
	rcv := newReceiver(t)
	n := New([]planner.Notification{{
		Kind: dsl.NotifySlack, Name: "deploys", URLFromEnv: "SLACK_URL",
		Events: []string{"ROLLBACK_START", "RUN_FAILED"}, Timeout: 10 * time.Second,
	}}, Options{LookupEnv: env(map[string]string{"SLACK_URL": rcv.srv.URL + "/services/T0/B0/secret"}), Origin: "deploy-1"})
	for _, ev := range runEvents() {
		n.Observe(ev)
	}
	closeWithin(t, n, context.Background())
	var texts []string
	for _, r := range rcv.requests() {
		var body struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		texts = append(texts, body.Text)
	}
	want := []string{
		":rewind: rolling back *sso.api* (sso-api.service) (plan *platform*) on deploy-1\nError: GET http://localhost:3001/health: 503\nundoing 3 steps\nRun 20261130T230000Z-abcdef",
		":x: rollout run FAILED (plan *platform*) on deploy-1\nError: 1 of 2 failed (1 rolled back), 1 succeeded\nRun 20261130T230000Z-abcdef, 4.1s",
	}
	if !slices.Equal(texts, want) {
		t.Fatalf("texts:\n%q\nwant\n%q", texts, want)
	}
}

func TestSlackEscapes(t *testing.T) {
	got := SlackText(executor.Event{Event: executor.RunFailed, RunID: "r", Error: "a <b> & c"}, "h")
	if !strings.Contains(got, "a &lt;b&gt; &amp; c") {
		t.Fatalf("not escaped: %q", got)
	}
}

func TestReceiverDownIsReportedAfterRetries(t *testing.T) {
	rcv := newReceiver(t)
	url := rcv.srv.URL
	rcv.srv.Close() // nothing listens there any more
	var fails failures
	n := New([]planner.Notification{{
		Kind: dsl.NotifyWebhook, Name: "ops", URL: url, Events: []string{"RUN_FAILED"}, Timeout: 10 * time.Second, Retries: 2,
	}}, Options{Backoff: time.Millisecond, Failed: fails.add})
	ev := runEvents()[4]
	n.Observe(ev)
	closeWithin(t, n, context.Background())
	f := fails.list()
	if len(f) != 1 {
		t.Fatalf("NOTIFY_FAILED events: %+v, want 1", f)
	}
	if f[0].Event != executor.NotifyFailed || f[0].Cause != "RUN_FAILED" || f[0].RunID != ev.RunID || f[0].Time.IsZero() {
		t.Errorf("event %+v: want NOTIFY_FAILED for RUN_FAILED of the run, with a time", f[0])
	}
	if !strings.Contains(f[0].Message, "after 3 attempts") || !strings.Contains(f[0].Error, "connection refused") {
		t.Errorf("message %q error %q: want 3 attempts and the connection error", f[0].Message, f[0].Error)
	}
}

func TestRetriesServerErrorsNotClientErrors(t *testing.T) {
	for _, tt := range []struct {
		status int
		tries  int
	}{{500, 3}, {429, 3}, {404, 1}} {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			rcv := newReceiver(t)
			rcv.status = tt.status
			var fails failures
			n := New([]planner.Notification{{
				Kind: dsl.NotifyWebhook, Name: "ops", URL: rcv.srv.URL, Events: []string{"RUN_FAILED"}, Timeout: 10 * time.Second, Retries: 2,
			}}, Options{Backoff: time.Millisecond, Failed: fails.add})
			n.Observe(runEvents()[4])
			closeWithin(t, n, context.Background())
			if got := len(rcv.requests()); got != tt.tries {
				t.Errorf("%d requests, want %d", got, tt.tries)
			}
			if f := fails.list(); len(f) != 1 || !strings.Contains(f[0].Error, strconv.Itoa(tt.status)) {
				t.Errorf("NOTIFY_FAILED %+v: want one naming the status", f)
			}
		})
	}
}

// A receiver that accepts the connection and never answers costs one
// timeout per attempt, then the event is reported; Close does not wait
// for the receiver.
func TestHangingReceiverTimesOut(t *testing.T) {
	rcv := newReceiver(t)
	rcv.hang = true
	var fails failures
	n := New([]planner.Notification{{
		Kind: dsl.NotifyWebhook, Name: "ops", URL: rcv.srv.URL, Events: []string{"RUN_FAILED"}, Timeout: 50 * time.Millisecond, Retries: 1,
	}}, Options{Backoff: time.Millisecond, Failed: fails.add})
	n.Observe(runEvents()[4])
	closeWithin(t, n, context.Background())
	f := fails.list()
	if len(f) != 1 || f[0].Error != "no answer within 50ms" {
		t.Fatalf("NOTIFY_FAILED %+v: want one saying no answer within 50ms", f)
	}
	if got := len(rcv.requests()); got != 2 {
		t.Errorf("%d attempts, want 2", got)
	}
}

// Close is bounded by its context even when an attempt's own timeout is
// far longer: what is in flight or queued then is reported, not awaited.
func TestCloseIsBounded(t *testing.T) {
	rcv := newReceiver(t)
	rcv.hang = true
	var fails failures
	n := New([]planner.Notification{{
		Kind: dsl.NotifyWebhook, Name: "ops", URL: rcv.srv.URL, Events: dsl.DefaultNotifyEvents, Timeout: time.Hour, Retries: 2,
	}}, Options{Failed: fails.add})
	for _, ev := range runEvents() {
		n.Observe(ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	closeWithin(t, n, ctx)
	var causes []string
	for _, f := range fails.list() {
		causes = append(causes, f.Cause)
		if !strings.Contains(f.Error, "not delivered before rollout exited") {
			t.Errorf("error %q: want it to say rollout exited first", f.Error)
		}
	}
	if want := []string{"ROLLBACK_START", "ROLLBACK_SUCCESS", "RUN_FAILED"}; !slices.Equal(causes, want) {
		t.Errorf("NOTIFY_FAILED for %q, want %q", causes, want)
	}
}

// Observe never waits: with the receiver hanging and the queue full, the
// events that do not fit are dropped and reported.
func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	rcv := newReceiver(t)
	rcv.hang = true
	var fails failures
	n := New([]planner.Notification{{
		Kind: dsl.NotifyWebhook, Name: "ops", URL: rcv.srv.URL, Events: []string{"STEP_START"}, Timeout: time.Hour,
	}}, Options{QueueSize: 2, Failed: fails.add})
	observed := make(chan struct{})
	go func() {
		for i := range 10 {
			n.Observe(executor.Event{RunID: "r", Event: executor.StepStart, Step: strconv.Itoa(i)})
		}
		close(observed)
	}()
	select {
	case <-observed:
	case <-time.After(time.Minute):
		t.Fatal("Observe blocked on a hanging receiver")
	}
	dropped := 0
	for _, f := range fails.list() {
		if strings.HasPrefix(f.Error, "dropped:") {
			dropped++
		}
	}
	// One event in flight, two queued; at least the other seven dropped.
	if dropped < 7 {
		t.Errorf("%d dropped, want at least 7: %+v", dropped, fails.list())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	closeWithin(t, n, ctx)
	if got := len(fails.list()); got != 10 {
		t.Errorf("%d NOTIFY_FAILED, want all 10 events reported", got)
	}
}

func TestUnsetEnvironmentFailsWithoutSending(t *testing.T) {
	rcv := newReceiver(t)
	var fails failures
	n := New([]planner.Notification{
		{Kind: dsl.NotifyWebhook, Name: "ops", URL: rcv.srv.URL, Events: []string{"RUN_FAILED"}, HeadersFromEnv: map[string]string{"Authorization": "OPS_TOKEN"}},
		{Kind: dsl.NotifySlack, Name: "deploys", URLFromEnv: "SLACK_URL", Events: []string{"RUN_FAILED"}},
		{Kind: dsl.NotifySlack, Name: "bad", URLFromEnv: "BAD_URL", Events: []string{"RUN_FAILED"}},
	}, Options{LookupEnv: env(map[string]string{"BAD_URL": "not a url with secret-token"}), Failed: fails.add})
	n.Observe(runEvents()[4])
	closeWithin(t, n, context.Background())
	if got := len(rcv.requests()); got != 0 {
		t.Errorf("%d requests sent without their header", got)
	}
	var errs []string
	for _, f := range fails.list() {
		errs = append(errs, f.Error)
	}
	slices.Sort(errs)
	want := []string{
		"environment variable BAD_URL does not hold an http or https URL",
		"environment variable OPS_TOKEN (header Authorization) is not set",
		"environment variable SLACK_URL (the URL) is not set",
	}
	if !slices.Equal(errs, want) {
		t.Errorf("errors %q, want %q", errs, want)
	}
}

// The failure names the receiver without the URL's path, which for a Slack
// webhook is the secret.
func TestFailureHidesURLPath(t *testing.T) {
	rcv := newReceiver(t)
	url := rcv.srv.URL
	rcv.srv.Close()
	var fails failures
	n := New([]planner.Notification{
		{Kind: dsl.NotifySlack, Name: "inline", URL: url + "/services/T0/B0/secret", Events: []string{"RUN_FAILED"}},
		{Kind: dsl.NotifySlack, Name: "env", URLFromEnv: "SLACK_URL", Events: []string{"RUN_FAILED"}},
	}, Options{Backoff: time.Millisecond, LookupEnv: env(map[string]string{"SLACK_URL": url + "/services/T0/B0/secret"}), Failed: fails.add})
	n.Observe(runEvents()[4])
	closeWithin(t, n, context.Background())
	for _, f := range fails.list() {
		if strings.Contains(f.Message+f.Error, "secret") {
			t.Errorf("NOTIFY_FAILED shows the secret: %q %q", f.Message, f.Error)
		}
	}
	if len(fails.list()) != 2 {
		t.Fatalf("want 2 failures, got %+v", fails.list())
	}
}

func TestNoTargetsIsFree(t *testing.T) {
	n := New(nil, Options{})
	n.Observe(runEvents()[4])
	n.Close(context.Background())
	var nilN *Notifier
	nilN.Observe(runEvents()[4])
	nilN.Close(context.Background())
}

// dsl.NotifyEvents must list every event of executor/events.go's first
// const block except NOTIFY_FAILED: a new event must be notifiable (and
// `plan validate` must accept it).
func TestNotifyEventsMatchExecutor(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../executor/events.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			for _, v := range spec.(*ast.ValueSpec).Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					events = append(events, s)
				}
			}
		}
		break // the second const block holds observer-only events
	}
	events = slices.DeleteFunc(events, func(e string) bool { return e == executor.NotifyFailed })
	got := slices.Sorted(slices.Values(dsl.NotifyEvents))
	slices.Sort(events)
	if !slices.Equal(got, events) {
		t.Fatalf("dsl.NotifyEvents = %q\nexecutor events  = %q\nadd the new events to dsl.NotifyEvents", got, events)
	}
}

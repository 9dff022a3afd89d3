package main

// notify blocks with the real binary, a real systemd --user manager and
// real local HTTP receivers: delivered bodies, headers from the
// environment, and receivers that are down or hang, which must change
// neither the run's outcome nor its exit status.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/systemdtest"
)

// hookReceiver is a local HTTP server recording each body and its
// Authorization header; hang makes it accept requests and never answer.
type hookReceiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	bodies  []map[string]any
	auth    []string
	release chan struct{}
}

func newHookReceiver(t *testing.T, hang bool) *hookReceiver {
	r := &hookReceiver{release: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		if hang {
			select {
			case <-r.release:
			case <-req.Context().Done():
			}
		}
	}))
	t.Cleanup(func() { close(r.release); r.srv.Close() })
	return r
}

func (r *hookReceiver) got() ([]map[string]any, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies), slices.Clone(r.auth)
}

func TestRunNotifiesAndSurvivesBrokenReceivers(t *testing.T) {
	p := newPlatform(t)
	db := p.addService("nt.db", "v1", systemdtest.UnitOptions{})
	api := p.addService("nt.api", "v1", systemdtest.UnitOptions{})
	p.startAll()
	// The API's migration fails after its restart: it is rolled back and
	// the run fails with exit 1, notifications or not.
	writeFile(t, api.Dir+"/FAIL_MIGRATION", "")

	ops := newHookReceiver(t, false)
	slack := newHookReceiver(t, false)
	hanging := newHookReceiver(t, true)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	plan := p.writePlan("plan.hcl", `
pipeline "default" {
  step "restart" "restart" {}
  step "exec" "migrate" {
    command = ["test", "!", "-e", "${service.working_dir}/FAIL_MIGRATION"]
  }
}
`+db.serviceHCL("")+api.serviceHCL(`depends_on = ["nt.db"]`)+fmt.Sprintf(`
notify "webhook" "ops" {
  url              = "%s/rollout"
  headers_from_env = { Authorization = "NT_OPS_TOKEN" }
}
notify "slack" "deploys" {
  url_from_env = "NT_SLACK_URL"
  events       = ["RUN_FAILED"]
}
notify "webhook" "down" {
  url     = "%s/hook"
  events  = ["RUN_FAILED"]
  retries = 1
}
notify "webhook" "hanging" {
  url     = "%s/hook"
  events  = ["ROLLBACK_START", "RUN_FAILED"]
  timeout = "300ms"
  retries = 1
}
`, ops.srv.URL, downURL, hanging.srv.URL))

	cmd := p.command("run", plan, "--user", "--events", p.events)
	cmd.Env = append(cmd.Env, "NT_OPS_TOKEN=Bearer nt-secret", "NT_SLACK_URL="+slack.srv.URL+"/services/T0/B0/token")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != exitFailed {
		t.Fatalf("exit %d, want 1 (a service rolled back), notifications must not change it\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}

	bodies, auth := ops.got()
	var names []string
	for i, b := range bodies {
		names = append(names, fmt.Sprint(b["event"], " ", b["service"]))
		if auth[i] != "Bearer nt-secret" {
			t.Errorf("ops request %d: Authorization %q, want the value of $NT_OPS_TOKEN", i, auth[i])
		}
		if b["run_id"] == "" || b["plan"] != "plan" || b["notification"] != "ops" {
			t.Errorf("ops body %v: want run_id, plan and notification", b)
		}
	}
	want := []string{"ROLLBACK_START nt.api", "ROLLBACK_SUCCESS nt.api", "RUN_FAILED <nil>"}
	if !slices.Equal(names, want) {
		t.Errorf("ops received %q, want %q", names, want)
	}
	if len(bodies) > 0 && !strings.Contains(fmt.Sprint(bodies[0]["error"]), "exited with status 1") {
		t.Errorf("ROLLBACK_START body %v: want the migration's error", bodies[0])
	}

	sbodies, _ := slack.got()
	if len(sbodies) != 1 {
		t.Fatalf("slack received %d messages, want 1: %v", len(sbodies), sbodies)
	}
	text := fmt.Sprint(sbodies[0]["text"])
	if !strings.Contains(text, "rollout run FAILED (plan *plan*)") || !strings.Contains(text, "1 of 2 failed (1 rolled back)") || !strings.Contains(text, "Run 20") {
		t.Errorf("slack text %q: want the outcome, the error and the run", text)
	}

	// The receivers that are down or hang are in the events log as
	// NOTIFY_FAILED, and said on stderr; the run's own events are intact.
	var failed []string
	var runID string
	for _, e := range p.readEvents() {
		if e.Event == executor.RunStart {
			runID = e.RunID
		}
		if e.Event == executor.NotifyFailed {
			failed = append(failed, e.Message+": "+e.Error)
			if e.RunID != runID || e.Time.IsZero() {
				t.Errorf("NOTIFY_FAILED %+v: want the run's id and a time", e)
			}
		}
	}
	slices.Sort(failed)
	wantFailed := []string{
		`notify webhook "down": RUN_FAILED not sent to ` + downURL + ` after 2 attempts: dial tcp ` + strings.TrimPrefix(downURL, "http://") + `: connect: connection refused`,
		`notify webhook "hanging": ROLLBACK_START not sent to ` + hanging.srv.URL + ` after 2 attempts: no answer within 300ms`,
		`notify webhook "hanging": RUN_FAILED not sent to ` + hanging.srv.URL + ` after 2 attempts: no answer within 300ms`,
	}
	if !slices.Equal(failed, wantFailed) {
		t.Errorf("NOTIFY_FAILED:\n got %q\nwant %q", failed, wantFailed)
	}
	for _, w := range wantFailed {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr does not say %q:\n%s", w, stderr.String())
		}
	}
	if strings.Contains(stderr.String()+stdout.String(), "nt-secret") || strings.Contains(stderr.String(), "/services/T0") {
		t.Errorf("a secret shows in the output:\n%s\n%s", stdout.String(), stderr.String())
	}

	// rollout events counts them in the run's detail.
	r := p.rollout("events", "--events", p.events, "--last")
	if !strings.Contains(r.Stdout, "notifications not sent: 3") || !strings.Contains(r.Stdout, `notify webhook "down": RUN_FAILED not sent`) {
		t.Errorf("rollout events --last:\n%s", r.Stdout)
	}
}

package main

import (
	"strings"
	"testing"
)

// The recorded log holds a successful run, a failed run with a rollback
// and a skipped dependent, and a run killed mid-write (a torn last line).
func TestEvents(t *testing.T) {
	tests := []struct {
		name   string
		opts   EventsOptions
		golden string
		code   int
	}{
		{name: "list", golden: "events/list.txt"},
		{name: "last", opts: EventsOptions{Last: true}, golden: "events/last.txt"},
		{name: "run", opts: EventsOptions{RunID: "20261121T040000Z-bbbbbb"}, golden: "events/run.txt"},
		{name: "service", opts: EventsOptions{Service: "sso.redis"}, golden: "events/service.txt"},
		{name: "run and service", opts: EventsOptions{RunID: "20261121T040000Z-bbbbbb", Service: "merchant.api"}, golden: "events/run-service.txt"},
		{name: "json list", opts: EventsOptions{JSON: true}, golden: "events/list.json"},
		{name: "json run", opts: EventsOptions{RunID: "20261120T030000Z-aaaaaa", JSON: true}, golden: "events/run.jsonl"},
		{name: "unknown run", opts: EventsOptions{RunID: "nope"}, code: exitUsage},
		{name: "unknown service", opts: EventsOptions{Service: "nope"}, code: exitUsage},
		{name: "unknown service in a run", opts: EventsOptions{RunID: "20261121T040000Z-bbbbbb", Service: "sso.redsi"}, code: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TZ", "UTC")
			ios, out, errOut := testStreams()
			opts := tt.opts
			opts.IO = ios
			opts.File = "testdata/events/events.jsonl"
			err := eventsRun(&opts)
			if code := exitCode(err); code != tt.code {
				t.Fatalf("exit code = %d (%v), want %d", code, err, tt.code)
			}
			if tt.code != exitOK {
				return
			}
			if !strings.Contains(errOut.String(), "skipped 1 line that are not events") && !strings.Contains(errOut.String(), "skipped 1 line") {
				t.Errorf("the torn line was not reported: %q", errOut)
			}
			golden(t, tt.golden, out.Bytes())
		})
	}
}

func TestEventsUnknownServiceSaysSo(t *testing.T) {
	ios, _, _ := testStreams()
	err := eventsRun(&EventsOptions{IO: ios, File: "testdata/events/events.jsonl", Service: "sso.redsi"})
	if code := exitCode(err); code != exitUsage || !strings.Contains(err.Error(), `no run in testdata/events/events.jsonl touched a service "sso.redsi". Did you mean "sso.redis"?`) {
		t.Errorf("err = %v (code %d), want a usage error with a suggestion", err, code)
	}
}

func TestEventsMissingLog(t *testing.T) {
	ios, _, _ := testStreams()
	err := eventsRun(&EventsOptions{IO: ios, File: t.TempDir() + "/none.jsonl"})
	if code := exitCode(err); code != exitUsage || !strings.Contains(err.Error(), "no events log") {
		t.Errorf("err = %v (code %d), want a usage error saying there is no events log", err, code)
	}
}

// TestEventsOfAFleet: --service names a service and covers its instances;
// --host keeps the instances on that host; an unknown host is refused
// with a suggestion, like an unknown service.
func TestEventsOfAFleet(t *testing.T) {
	tests := []struct {
		name      string
		opts      EventsOptions
		want      []string
		wantNot   []string
		code      int
		wantError string
	}{
		{name: "service covers its instances", opts: EventsOptions{Last: true, Service: "api"}, want: []string{"api@app1", "api@app2"}, wantNot: []string{"web@app2"}},
		{name: "one instance", opts: EventsOptions{Last: true, Service: "api@app2"}, want: []string{"api@app2"}, wantNot: []string{"api@app1", "web@app2"}},
		{name: "host", opts: EventsOptions{Last: true, Host: "app2"}, want: []string{"api@app2", "web@app2"}, wantNot: []string{"api@app1"}},
		{name: "service and host", opts: EventsOptions{Last: true, Service: "api", Host: "app1"}, want: []string{"api@app1"}, wantNot: []string{"api@app2", "web@app2"}},
		{name: "unknown host", opts: EventsOptions{Host: "ap2"}, code: exitUsage, wantError: `touched a host "ap2". Did you mean "app2"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, out, _ := testStreams()
			opts := tt.opts
			opts.IO = ios
			opts.File = "testdata/events/fleet.jsonl"
			err := eventsRun(&opts)
			if code := exitCode(err); code != tt.code {
				t.Fatalf("exit code = %d (%v), want %d", code, err, tt.code)
			}
			if tt.wantError != "" && !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("err = %v, want %q", err, tt.wantError)
			}
			// The run's summary names every service it restarted; the
			// events after it are the ones selected.
			_, evs, _ := strings.Cut(out.String(), "\n\n")
			for _, s := range tt.want {
				if !strings.Contains(evs, s+": started") {
					t.Errorf("events lack %s:\n%s", s, out)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(evs, s+":") {
					t.Errorf("events show %s:\n%s", s, out)
				}
			}
		})
	}
}

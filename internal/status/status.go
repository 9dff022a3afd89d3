// Package status answers "how is each service doing right now": for each
// service of a plan, its unit's state and since when, main PID, the
// release it runs, its own health check run once, and the last run that
// touched it — what an operator would otherwise piece together from
// `systemctl list-units`, `curl` and `tail` of the events log.
package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
	"github.com/rollout-sh/rollout/steps"
)

// Defaults of Options.
const (
	DefaultConcurrency = 8
	DefaultTimeout     = 15 * time.Second
)

// Options controls Collect.
type Options struct {
	// Systemd reads each unit's state and serves the systemd health kind.
	Systemd steps.Backend
	// Events is the events log's content, for each service's last run;
	// nil when there is none.
	Events []executor.Event
	// Concurrency bounds how many services are looked at at once.
	Concurrency int
	// Timeout bounds the whole collection; a health check still running
	// then is reported as failing.
	Timeout time.Duration
	// Probe runs a service's health check once (steps.ProbeHealth when nil).
	Probe func(ctx context.Context, h *planner.Health, unit string, sd steps.Backend) error
	// Release reads the release a service runs from its working directory
	// (steps.CurrentRelease when nil): "" when it does not deploy with
	// releases.
	Release func(workingDir string) string
	// Hosts gives the host of an instance on one: its unit state, health
	// (systemd and exec kinds) and release are read there. Nil when the
	// plan has no hosts.
	Hosts func(*planner.Host) (steps.Host, error)
}

// Report is the status of the selected services, in plan order. Healthy
// is true when every service is.
type Report struct {
	Plan     string    `json:"plan"`
	Time     time.Time `json:"time"`
	Healthy  bool      `json:"healthy"`
	Services []Service `json:"services"`
}

// Service is one service's status.
type Service struct {
	Name string `json:"name"`
	// Host is the host of an instance on one; "" where rollout runs.
	Host string `json:"host,omitempty"`
	Unit string `json:"unit"`
	// Healthy: the unit is loaded and active, and the health check
	// passed.
	Healthy     bool      `json:"healthy"`
	LoadState   string    `json:"load_state"`
	ActiveState string    `json:"active_state"`
	SubState    string    `json:"sub_state"`
	Since       time.Time `json:"since,omitzero"` // the last change of ActiveState
	MainPID     uint32    `json:"main_pid"`
	// Release is the release `current` points at; "" when the service
	// does not deploy with the release step.
	Release string  `json:"release,omitempty"`
	Health  Health  `json:"health"`
	LastRun *RunRef `json:"last_run"`
	// Error is why the unit's state could not be read.
	Error string `json:"error,omitempty"`
}

// Health is the result of running the service's health check once.
type Health struct {
	Kind   string `json:"kind"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Target string `json:"target,omitempty"` // URL, address or command
}

// RunRef is the last run that touched a service, and what it did to it.
type RunRef struct {
	RunID string `json:"run_id"`
	Plan  string `json:"plan,omitempty"`
	// Result is what the run did to the service: restarted, failed,
	// rolled back, rollback failed, skipped, or in progress / unfinished
	// when the run has no end.
	Result string    `json:"result"`
	Time   time.Time `json:"time"` // the service's last event in that run
}

// Collect looks at every service of plan: the unit's state and the
// health check of several services at once (Concurrency), all within
// Timeout. It never returns an error: what cannot be read is in the
// service's Error or Health.
func Collect(ctx context.Context, plan *planner.Plan, now time.Time, opts Options) Report {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Probe == nil {
		opts.Probe = steps.ProbeHealth
	}
	if opts.Release == nil {
		opts.Release = steps.CurrentRelease
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	last := lastRuns(opts.Events)
	rep := Report{Plan: plan.Name, Time: now, Healthy: true, Services: make([]Service, len(plan.Services))}
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	for i, svc := range plan.Services {
		rep.Services[i] = Service{Name: svc.Name, Unit: svc.Unit, LastRun: last[svc.Name]}
		if svc.Host != nil {
			rep.Services[i].Host = svc.Host.Name
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				rep.Services[i].Health = Health{Kind: kindOf(svc), Error: "not checked: " + timeoutText(opts.Timeout)}
				rep.Services[i].Error = "not read: " + timeoutText(opts.Timeout)
				return
			}
			collectOne(ctx, svc, &rep.Services[i], opts)
		}()
	}
	wg.Wait()
	for i := range rep.Services {
		s := &rep.Services[i]
		s.Healthy = s.Error == "" && s.LoadState == "loaded" && s.ActiveState == "active" && s.Health.OK
		if !s.Healthy {
			rep.Healthy = false
		}
	}
	return rep
}

func timeoutText(d time.Duration) string {
	return fmt.Sprintf("status took longer than %s", d)
}

func kindOf(svc *planner.Service) string {
	if svc.Health == nil {
		return ""
	}
	return svc.Health.Kind
}

func collectOne(ctx context.Context, svc *planner.Service, out *Service, opts Options) {
	h := svc.Health
	out.Health = Health{Kind: kindOf(svc), Target: target(h)}
	sd := opts.Systemd
	release := func() string { return opts.Release(svc.WorkingDir) }
	if svc.Host != nil {
		// The local manager knows nothing of a unit on another machine.
		host, err := hostOf(svc, opts)
		if err != nil {
			out.Error = err.Error()
			out.Health.Error = "not checked: " + err.Error()
			return
		}
		sd = host.Systemd()
		release = func() string { return steps.CurrentReleaseOn(ctx, host, svc.WorkingDir) }
	}
	if sd == nil {
		out.Error = "no systemd manager"
	} else if st, err := sd.Status(ctx, svc.Unit); err != nil {
		out.Error = err.Error()
	} else {
		out.LoadState, out.ActiveState, out.SubState = st.LoadState, st.ActiveState, st.SubState
		out.Since = st.StateChangeTime
		out.MainPID = st.MainPID
	}
	out.Release = release()

	if h == nil {
		out.Health.Error = "no health check"
		return
	}
	err := opts.Probe(ctx, h, svc.Unit, sd)
	switch {
	case err == nil:
		out.Health.OK = true
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		out.Health.Error = "not finished: " + timeoutText(opts.Timeout)
	default:
		out.Health.Error = err.Error()
	}
}

func hostOf(svc *planner.Service, opts Options) (steps.Host, error) {
	if opts.Hosts == nil {
		return nil, fmt.Errorf("host %s is not reachable in this status", svc.Host.Name)
	}
	h, err := opts.Hosts(svc.Host)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", svc.Host.Name, err)
	}
	return h, nil
}

func target(h *planner.Health) string {
	if h == nil {
		return ""
	}
	switch {
	case h.URL != "":
		return h.URL
	case h.Address != "":
		return h.Address
	case len(h.Command) > 0:
		return strings.Join(h.Command, " ")
	}
	return ""
}

// lastRuns finds, for each service, the last run that has an event about
// it, and what that run did to it.
func lastRuns(events []executor.Event) map[string]*RunRef {
	type seen struct {
		ref                                                    *RunRef
		restarted, failed, rolledBack, rollbackFailed, skipped bool
	}
	out := map[string]*RunRef{}
	for _, run := range executor.Summarize(events) {
		touched := map[string]*seen{}
		var names []string
		for _, e := range run.Events {
			if e.Service == "" || e.Event == executor.NotifyFailed {
				continue
			}
			s := touched[e.Service]
			if s == nil {
				s = &seen{ref: &RunRef{RunID: run.RunID, Plan: run.Plan}}
				touched[e.Service] = s
				names = append(names, e.Service)
			}
			s.ref.Time = e.Time
			switch e.Event {
			case executor.ServiceRestartSuccess:
				s.restarted = true
			case executor.ServiceRestartFailed:
				s.failed = true
			case executor.RollbackSuccess:
				s.rolledBack = true
			case executor.RollbackFailed:
				s.rollbackFailed = true
			case executor.ServiceSkipped:
				s.skipped = true
			}
		}
		for _, name := range names {
			s := touched[name]
			switch {
			case s.rollbackFailed:
				s.ref.Result = "ROLLBACK FAILED"
			case s.rolledBack:
				s.ref.Result = "failed, rolled back"
			case s.failed:
				s.ref.Result = "failed"
			case s.restarted:
				s.ref.Result = "restarted"
			case s.skipped:
				s.ref.Result = "skipped"
			default:
				// No final word: the run is going on now, or it died
				// (see `rollout recover`).
				s.ref.Result = "unfinished"
			}
			if prev := out[name]; prev == nil || !s.ref.Time.Before(prev.Time) {
				out[name] = s.ref
			}
		}
	}
	return out
}

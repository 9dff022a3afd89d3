package planner

import (
	"encoding/json"
	"io"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// The JSON shape of `plan show --format json`; field names are part of the
// CLI contract (docs/cli.md): scripts read them, so they are renamed only
// with a new format.
type (
	jsonPlan struct {
		Plan        string       `json:"plan"`
		File        string       `json:"file"`
		MaxParallel int          `json:"max_parallel"`
		OnFailure   string       `json:"on_failure"`
		MaxFailures int          `json:"max_failures,omitempty"`
		EventsLog   string       `json:"events_log,omitempty"`
		Batches     []jsonBatch  `json:"batches,omitempty"`
		Notify      []jsonNotify `json:"notify,omitempty"`
		Hosts       []jsonHost   `json:"hosts,omitempty"`
		// Instances lists, per service that has instances (on hosts, or of
		// a template unit), its instances in plan order.
		Instances    map[string][]string `json:"instances,omitempty"`
		Canaries     []jsonCanary        `json:"canaries,omitempty"`
		Services     []jsonService       `json:"services"`
		Order        []string            `json:"order"`
		Waves        [][]string          `json:"waves"`
		CriticalPath jsonCritical        `json:"critical_path"`
		Estimates    map[string]jsonSpan `json:"estimates"`
		Sequential   jsonSpan            `json:"sequential_estimate"`
	}
	jsonNotify struct {
		Kind           string            `json:"kind"`
		Name           string            `json:"name"`
		URL            string            `json:"url,omitempty"`
		URLFromEnv     string            `json:"url_from_env,omitempty"`
		Events         []string          `json:"events"`
		HeadersFromEnv map[string]string `json:"headers_from_env,omitempty"`
		Timeout        string            `json:"timeout"`
		Retries        int               `json:"retries"`
	}
	jsonBatch struct {
		Types          []string `json:"types"`
		Tags           []string `json:"tags"`
		Services       []string `json:"services,omitempty"`
		MaxUnavailable int      `json:"max_unavailable"`
	}
	jsonHost struct {
		Name       string   `json:"name"`
		Address    string   `json:"address"`
		User       string   `json:"user,omitempty"`
		Port       int      `json:"port,omitempty"`
		SystemdBus string   `json:"systemd_bus,omitempty"`
		Tags       []string `json:"tags"`
		Instances  []string `json:"instances"`
	}
	jsonCanary struct {
		Service        string      `json:"service"`
		Canaries       []string    `json:"canaries"`
		Rest           []string    `json:"rest"`
		Observe        string      `json:"observe"`
		Interval       string      `json:"interval"`
		AutoPromote    bool        `json:"auto_promote"`
		PromoteTimeout string      `json:"promote_timeout"`
		FailureLimit   int         `json:"failure_limit,omitempty"`
		Checks         []jsonCheck `json:"checks"`
	}
	jsonCheck struct {
		Kind         string   `json:"kind"`
		Instance     string   `json:"instance,omitempty"`
		URL          string   `json:"url,omitempty"`
		ExpectStatus int      `json:"expect_status,omitempty"`
		JSONPath     string   `json:"json_path,omitempty"`
		Max          *float64 `json:"max,omitempty"`
		Min          *float64 `json:"min,omitempty"`
		Command      []string `json:"command,omitempty"`
		Timeout      string   `json:"timeout"`
	}
	jsonService struct {
		Name       string     `json:"name"`
		Service    string     `json:"service,omitempty"`  // an instance's service
		Host       string     `json:"host,omitempty"`     // an instance's host
		Instance   string     `json:"instance,omitempty"` // an instance of a template unit
		Port       int        `json:"port,omitempty"`     // the service's port for the instance
		After      []string   `json:"after,omitempty"`    // the serial batch before
		Unit       string     `json:"unit"`
		Type       string     `json:"type"`
		Pipeline   string     `json:"pipeline"`
		WorkingDir string     `json:"working_dir,omitempty"`
		DependsOn  []string   `json:"depends_on"`
		Needs      []string   `json:"needs"`
		Wave       int        `json:"wave"`
		Tags       []string   `json:"tags"`
		Health     jsonHealth `json:"health"`
		Steps      []jsonStep `json:"steps"`
	}
	jsonHealth struct {
		Kind         string   `json:"kind"`
		URL          string   `json:"url,omitempty"`
		ExpectStatus int      `json:"expect_status,omitempty"`
		Address      string   `json:"address,omitempty"`
		Command      []string `json:"command,omitempty"`
		Timeout      string   `json:"timeout"`
		Retries      int      `json:"retries"`
		Interval     string   `json:"interval"`
	}
	jsonStep struct {
		Name     string                     `json:"name"`
		Type     string                     `json:"type"`
		Args     map[string]json.RawMessage `json:"args"`
		Check    bool                       `json:"check,omitempty"`
		Rollback string                     `json:"rollback"`
		Summary  string                     `json:"summary,omitempty"`
		Detail   []string                   `json:"detail,omitempty"`
	}
	jsonCritical struct {
		Services []string `json:"services"`
		Estimate jsonSpan `json:"estimate"`
	}
	jsonSpan struct {
		Typical string `json:"typical"`
		Worst   string `json:"worst"`
	}
)

// RenderJSON writes the plan as JSON, indented two spaces, with a trailing
// newline. Step arguments are resolved values; null ones are kept as null
// so a consumer sees every argument the step type takes.
func RenderJSON(w io.Writer, p *Plan) error {
	est := p.Estimate()
	out := jsonPlan{
		Plan:        p.Name,
		File:        p.File,
		MaxParallel: p.MaxParallel,
		OnFailure:   p.OnFailure,
		MaxFailures: p.MaxFailures,
		EventsLog:   p.EventsLog,
		Services:    make([]jsonService, 0, len(p.Services)),
		Order:       nonNil(p.Order),
		Waves:       make([][]string, 0, len(p.Waves)),
		CriticalPath: jsonCritical{
			Services: nonNil(est.CriticalPath),
			Estimate: toJSONSpan(est.Critical),
		},
		Estimates:  make(map[string]jsonSpan, len(est.Services)),
		Sequential: toJSONSpan(est.Sequential),
	}
	for name, d := range est.Services {
		out.Estimates[name] = toJSONSpan(d)
	}
	for _, wave := range p.Waves {
		out.Waves = append(out.Waves, nonNil(wave))
	}
	for _, b := range p.Batches {
		out.Batches = append(out.Batches, jsonBatch{Types: nonNil(b.Types), Tags: nonNil(b.Tags), Services: b.Services, MaxUnavailable: b.MaxUnavailable})
	}
	for _, svc := range p.Services {
		if svc.Service == "" || svc.Service == svc.Name {
			continue // a service without instances
		}
		if out.Instances == nil {
			out.Instances = map[string][]string{}
		}
		out.Instances[svc.Service] = append(out.Instances[svc.Service], svc.Name)
	}
	for _, h := range p.Hosts {
		jh := jsonHost{Name: h.Name, Address: h.Address, User: h.User, Port: h.Port, SystemdBus: h.SystemdBus, Tags: nonNil(h.Tags), Instances: []string{}}
		for _, svc := range p.Services {
			if svc.HostName() == h.Name {
				jh.Instances = append(jh.Instances, svc.Name)
			}
		}
		out.Hosts = append(out.Hosts, jh)
	}
	for _, c := range p.Canaries {
		jc := jsonCanary{Service: c.Service, Canaries: nonNil(c.Canaries), Rest: nonNil(c.Rest), Observe: c.Observe.String(),
			Interval: c.Interval.String(), AutoPromote: c.AutoPromote, PromoteTimeout: c.PromoteTimeout.String(), FailureLimit: c.FailureLimit, Checks: []jsonCheck{}}
		for _, ch := range c.Checks {
			jc.Checks = append(jc.Checks, jsonCheck{Kind: ch.Kind, Instance: ch.Instance, URL: ch.URL, ExpectStatus: ch.ExpectStatus,
				JSONPath: ch.JSONPath, Max: ch.Max, Min: ch.Min, Command: ch.Command, Timeout: ch.Timeout.String()})
		}
		out.Canaries = append(out.Canaries, jc)
	}
	for _, n := range p.Notifications {
		out.Notify = append(out.Notify, jsonNotify{
			Kind: n.Kind, Name: n.Name, URL: n.URL, URLFromEnv: n.URLFromEnv, Events: nonNil(n.Events),
			HeadersFromEnv: n.HeadersFromEnv, Timeout: n.Timeout.String(), Retries: n.Retries,
		})
	}
	for _, svc := range p.Services {
		js := jsonService{
			Name:       svc.Name,
			Host:       svc.HostName(),
			Instance:   svc.Instance,
			Port:       svc.Port,
			After:      svc.After,
			Unit:       svc.Unit,
			Type:       svc.Type,
			Pipeline:   svc.Pipeline,
			WorkingDir: svc.WorkingDir,
			DependsOn:  nonNil(svc.DependsOn),
			Needs:      nonNil(svc.Needs),
			Wave:       svc.Wave,
			Tags:       nonNil(svc.Tags),
			Steps:      make([]jsonStep, 0, len(svc.Steps)),
		}
		if svc.Host != nil || svc.Instance != "" {
			js.Service = svc.ServiceName()
		}
		if h := svc.Health; h != nil {
			js.Health = jsonHealth{
				Kind: h.Kind, URL: h.URL, ExpectStatus: h.ExpectStatus, Address: h.Address, Command: h.Command,
				Timeout: h.Timeout.String(), Retries: h.Retries, Interval: h.Interval.String(),
			}
		}
		for _, step := range svc.Steps {
			jstep := jsonStep{Name: step.Name, Type: step.Type, Check: step.Check, Rollback: step.Rollback, Summary: step.Summary, Detail: step.Detail,
				Args: make(map[string]json.RawMessage, len(step.Args))}
			for name, v := range step.Args {
				raw, err := valueJSON(v)
				if err != nil {
					return err
				}
				jstep.Args[name] = raw
			}
			js.Steps = append(js.Steps, jstep)
		}
		out.Services = append(out.Services, js)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	_, err = w.Write(data)
	return err
}

// valueJSON converts a resolved argument to JSON. Unknown values cannot
// occur after Compile; they become null rather than an error.
func valueJSON(v cty.Value) (json.RawMessage, error) {
	if v == cty.NilVal || v.IsNull() || !v.IsWhollyKnown() {
		return json.RawMessage("null"), nil
	}
	v, _ = v.UnmarkDeep()
	return ctyjson.Marshal(v, v.Type())
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

func toJSONSpan(s Span) jsonSpan {
	return jsonSpan{Typical: s.Typical.String(), Worst: s.Worst.String()}
}

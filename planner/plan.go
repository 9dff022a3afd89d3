// Package planner turns a decoded dsl.Config into an executable Plan: it
// selects services, instantiates each service's pipeline with every step
// attribute resolved for that service, builds the dependency DAG, checks it,
// and computes the sequential order and the parallel waves.
//
// The planner knows no step type by name: the step types (their argument
// specs and what undoes them) are handed in through Options.StepTypes, so
// that the steps package can own them.
package planner

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/dsl"
)

// StepType describes one built-in step type to the planner.
type StepType struct {
	Name string
	// Spec decodes a step block's body (after `if` is removed). Required
	// attributes and attribute types come from it; hcldec reports missing
	// and unsupported arguments with their ranges.
	Spec hcldec.ObjectSpec
	// Check marks health checks and stabilization: --force drops them.
	Check bool
	// Rollback says in a few words what undoes the step ("restores the unit
	// file, daemon-reload"); "" means nothing to undo. plan show prints it.
	Rollback string
	// UniqueArgs are arguments that must resolve to a different value for
	// every selected service the step runs for. An rsync step whose `from`
	// is the same for two services would deploy one service's release
	// over the other's code.
	UniqueArgs []string
	// Estimate, when set, says how long the step takes for a service with
	// health h: Typical when all goes well (the waits that always happen,
	// such as a stabilization window), Worst when every retry and timeout
	// is used. plan show sums them along the critical path.
	Estimate func(args map[string]cty.Value, h *Health) Span
	// Validate, when set, checks decoded arguments beyond their types (a
	// duration that does not parse, an empty command). rng gives the source
	// range of an argument by name, for the diagnostic's Subject.
	Validate func(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics
	// Needs, when set, says what the step needs of the machine it runs on
	// (programs, directories, units); preflight checks it before a run.
	Needs NeedsFunc
	// Traffic, when set, says whether a step takes its service out of a
	// load balancer's traffic or puts it back (see TrafficMark). The
	// planner refuses a pipeline that takes a service out and never puts
	// it back: after a successful run it would stay out.
	Traffic func(args map[string]cty.Value) (TrafficMark, bool)
	// NotOnHosts, when set, says why the step type cannot act on an
	// instance on a host of the plan (it works on the machine rollout runs
	// on only); the planner refuses it in a service that has hosts rather
	// than let it act on the wrong machine.
	NotOnHosts string
	// OnHosts, when set, says whether a step with these arguments acts
	// on an instance on a host all the same, whatever NotOnHosts says:
	// HAProxy's runtime API at a TCP address is reached from the
	// controller, as an http health check is.
	OnHosts func(args map[string]cty.Value) bool
	// Detail, when set, says in a few lines what a step of a strategy
	// does with these arguments (the colors of a blue-green step, its
	// switch), for plan show.
	Detail func(args map[string]cty.Value, svc *Service) []string
	// Summary, when set, names the strategy in a few words ("blue-green
	// blue ⇄ green via nginx") for the service's node in plan show's graphs.
	Summary func(args map[string]cty.Value) string
	// CheckService, when set, says what is wrong with the step's
	// arguments for the service it is applied to ("the step's colors are
	// not the service's colors"), or "" when nothing is; plan validate
	// reports it at the step.
	CheckService func(args map[string]cty.Value, svc *Service) string
}

// TrafficMark is what a load balancer step does to its service's traffic.
type TrafficMark struct {
	// Key names the balancer and the server ("haproxy /run/haproxy.sock
	// api/s2"); a step that puts back pairs with the one that took out by it.
	Key string
	// Out is true for taking out (drain, down), false for putting back.
	Out bool
	// Hint says how to put it back, for the diagnostic ("Add a
	// haproxy_ready step with the same socket, backend and server ...").
	Hint string
}

// RunFlags are the CLI flags of a run, bound to `run` in step expressions as
// run.deploy, run.deploy_path, run.skip_migrations, run.force, run.dry_run.
type RunFlags struct {
	Deploy         bool
	DeployPath     string
	SkipMigrations bool
	Force          bool
	DryRun         bool
}

// Options controls Compile.
type Options struct {
	StepTypes map[string]StepType
	Run       RunFlags
	// PlanName picks the plan block; "" picks the root file's only plan
	// block, or none (all services, default policy) when there is none.
	PlanName string
	// Services are the --service names; they narrow the plan's selection.
	// An unknown name is an error diagnostic with a did-you-mean.
	Services []string
	// WithDependents adds every service downstream of the selection.
	WithDependents bool
	// Hosts are the --host names; they narrow the plan to the instances
	// on those hosts (services without hosts are left out). An unknown
	// name is an error diagnostic with a did-you-mean.
	Hosts []string
	// Parallel overrides the plan's max_parallel when ParallelSet.
	Parallel    int
	ParallelSet bool
}

// Plan is a compiled, validated plan, ready for the executor.
type Plan struct {
	// Name is the plan block's name, or the root file's base name without
	// extension when the file has no plan block.
	Name string
	File string
	// Services are the selected services in Order.
	Services []*Service
	// Order is the sequence a --parallel 1 run follows: a topological order
	// of the selected services, ties broken by declaration order.
	Order []string
	// Waves groups the selected services by depth: wave 0 has no selected
	// dependency, wave n depends on something in wave n-1.
	Waves [][]string

	MaxParallel int // 0 = unbounded
	OnFailure   string
	MaxFailures int
	Batches     []Batch
	EventsLog   string // defaults.events_log, "" when unset
	// Notifications are the plan's notify blocks with defaults applied,
	// in declaration order; every run of the plan sends them.
	Notifications []Notification
	// MinFreeSpace is defaults.min_free_space in bytes, else
	// DefaultMinFreeSpace; 0 turns the check off.
	MinFreeSpace int64
	// Hosts are the hosts the plan's instances run on, in declaration
	// order.
	Hosts []*Host
	// Canaries are the canary phases of the plan's services with a canary
	// block, in plan order.
	Canaries []*Canary

	DeclRange hcl.Range // the plan block, or the root file's start
}

// Notification is a notify block with its defaults applied: where to send
// which events. Secrets are not here, only the names of the environment
// variables that hold them.
type Notification struct {
	Kind       string // dsl.NotifyWebhook or dsl.NotifySlack
	Name       string
	URL        string // "" when URLFromEnv is set
	URLFromEnv string
	Events     []string
	// HeadersFromEnv maps a header name to the environment variable that
	// holds its value.
	HeadersFromEnv map[string]string
	Timeout        time.Duration // one attempt
	Retries        int           // attempts after the first
}

// Service is one selected service with its pipeline instantiated: for a
// service that runs on hosts, one instance of it on one host.
type Service struct {
	// Name identifies what the executor runs: the service's name, or
	// "SERVICE@HOST" for an instance on a host.
	Name string
	// Service is the service's name as declared (Name without "@HOST").
	Service string
	// Host is the host the instance runs on; nil runs where rollout runs.
	Host *Host
	// Instance is the instance of a template unit ("2" of
	// "api@.service"), "" for a service without instances; InstanceIndex
	// is its 0-based position in the service's instances, and Port the
	// service's port for it (0 when the service has none).
	Instance      string
	InstanceIndex int
	Port          int
	// Colors are the two instances a blue-green service takes turns
	// serving with (its `colors`); nil for any other service.
	Colors     []string
	Unit       string
	Type       string
	Pipeline   string
	WorkingDir string
	Tags       []string
	// DependsOn lists all declared dependencies; Needs only those that are
	// selected in this plan (the executor waits for Needs).
	DependsOn []string
	Needs     []string
	// After lists instances that must have finished, whatever their
	// outcome, before this one starts: the earlier batches of the same
	// service (serial). A failed one does not skip this one; the plan's
	// on_failure and max_failures decide whether the run goes on.
	After []string
	Wave  int
	// Health is never nil: a service without a health block gets the
	// systemd check (unit active), as the reference does for databases.
	Health    *Health
	Steps     []*Step
	DeclRange hcl.Range
}

// The health check settings when neither the service's health block nor
// the defaults block sets them (the reference's). This is their one
// definition: the compiler fills every Health from them, and the steps
// use them only for a Health that did not come from the compiler.
const (
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
	DefaultHealthInterval = time.Second
)

// DefaultHealth is the check of a service without a health block: the unit
// is active (the systemd kind), with the default settings.
func DefaultHealth() Health {
	return Health{Kind: dsl.HealthSystemd, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries, Interval: DefaultHealthInterval}
}

// WithDefaults returns h with each zero setting replaced by its default.
// A compiled plan has none (the plan language refuses zero), so this only
// matters to a Health built by hand.
func (h Health) WithDefaults() Health {
	if h.Timeout <= 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Retries <= 0 {
		h.Retries = DefaultHealthRetries
	}
	if h.Interval <= 0 {
		h.Interval = DefaultHealthInterval
	}
	return h
}

// Health is a service's health check with the plan defaults applied: every
// setting is set, and what `plan show` prints is what the run uses.
type Health struct {
	Kind         string // dsl.HealthHTTP, ...
	URL          string
	ExpectStatus int
	Address      string
	Command      []string
	Timeout      time.Duration
	Retries      int
	Interval     time.Duration
}

// Step is one step instantiated for one service.
type Step struct {
	Name string
	Type string
	// Args are the step's attributes evaluated for this service, keyed by
	// attribute name; absent optional attributes are cty.NullVal of their type.
	Args      map[string]cty.Value
	Check     bool     // from StepType.Check
	Rollback  string   // from StepType.Rollback
	Estimate  Span     // from StepType.Estimate
	Needs     Needs    // from StepType.Needs
	Detail    []string // from StepType.Detail
	Summary   string   // from StepType.Summary
	DeclRange hcl.Range
}

// Span is a duration estimate: what usually happens, and the most it can take.
type Span struct {
	Typical time.Duration
	Worst   time.Duration
}

// Add returns the sum of two spans.
func (s Span) Add(o Span) Span { return Span{s.Typical + o.Typical, s.Worst + o.Worst} }

func (s Span) String() string {
	if s.Typical == s.Worst {
		return s.Worst.String()
	}
	return fmt.Sprintf("%s typical, %s at most", s.Typical, s.Worst)
}

// Batch limits how many services matching Types or Tags, or instances of
// Services, restart at once.
type Batch struct {
	Types          []string
	Tags           []string
	Services       []string
	MaxUnavailable int
}

// Canary is the canary phase of one service: the instances in Canaries
// restart first and are observed for Observe, running Checks every
// Interval; then they are promoted (at once with AutoPromote, else when a
// person confirms within PromoteTimeout) and Rest restart. A failed check
// rolls back the canaries only, and Rest are never started.
type Canary struct {
	Service        string   // the declared service
	Canaries       []string // instance names (Service.Name), in plan order
	Rest           []string
	Observe        time.Duration
	Interval       time.Duration
	AutoPromote    bool
	PromoteTimeout time.Duration
	// FailureLimit is how many rounds of checks may fail before the
	// canary has failed.
	FailureLimit int
	Checks       []*Check
	DeclRange    hcl.Range
}

// Check kinds of a canary's observation.
const (
	CheckHealth = "health" // the instance's own health check, one attempt
	CheckHTTP   = "http"
	CheckExec   = "exec"
)

// Check is one check of a canary's observation, resolved for one canary
// instance (Instance), or for all of them when Instance is "" (the check
// reads nothing of the instance, so it is run once).
type Check struct {
	Kind     string
	Instance string
	// http: status ExpectStatus (any 2xx when 0); with JSONPath, the
	// number there at most Max and at least Min.
	URL          string
	ExpectStatus int
	JSONPath     string
	Max, Min     *float64
	// exec: Command exits 0. It runs on the instance's host.
	Command   []string
	Timeout   time.Duration
	DeclRange hcl.Range
}

// Describe says what the check checks, for plan show and events.
func (c *Check) Describe() string {
	var s string
	switch c.Kind {
	case CheckHealth:
		s = "health of " + c.Instance
		return s
	case CheckHTTP:
		s = "http " + c.URL
		if c.ExpectStatus != 0 {
			s += fmt.Sprintf(" status %d", c.ExpectStatus)
		}
		if c.JSONPath != "" {
			s += " " + c.JSONPath
			if c.Min != nil {
				s += fmt.Sprintf(" >= %g", *c.Min)
			}
			if c.Max != nil {
				s += fmt.Sprintf(" <= %g", *c.Max)
			}
		}
	case CheckExec:
		s = "exec " + strings.Join(c.Command, " ")
	default:
		s = c.Kind
	}
	if c.Instance != "" {
		s += " (" + c.Instance + ")"
	}
	return s
}

// Host is a machine instances run on, reached with the user's ssh.
type Host struct {
	Name       string
	Address    string // an ssh destination (name, IP or ~/.ssh/config Host)
	User       string // "" = ssh's choice
	Port       int    // 0 = ssh's choice
	SSHArgs    []string
	SystemdBus string // "" = the system manager
	Tags       []string
	DeclRange  hcl.Range
}

// Destination is the host as ssh and rsync name it: [user@]address.
func (h *Host) Destination() string {
	if h.User != "" {
		return h.User + "@" + h.Address
	}
	return h.Address
}

// HostName is the name of the instance's host, "" where rollout runs.
func (s *Service) HostName() string {
	if s == nil || s.Host == nil {
		return ""
	}
	return s.Host.Name
}

// ServiceName is the declared service's name (Service, or Name when unset).
func (s *Service) ServiceName() string {
	if s.Service != "" {
		return s.Service
	}
	return s.Name
}

// SizeText says how many services the plan restarts, and how many
// instances when a service runs as several (on hosts, or as a template
// unit's instances): "3 services", "1 service (3 instances)".
func (p *Plan) SizeText() string {
	declared := map[string]bool{}
	for _, s := range p.Services {
		declared[s.Service] = true
	}
	text := plural(len(declared), "service")
	if len(declared) != len(p.Services) {
		text += " (" + plural(len(p.Services), "instance") + ")"
	}
	return text
}

// Package dsl decodes rollout plan files (HCL) into typed Go values.
//
// Every decoded object keeps the hcl.Range it came from, as Terraform's
// configs package does, so that any later check (the planner's cycle and
// selection checks, the executor's reports) can point at the source.
// Decoding collects every diagnostic it can instead of stopping at the first;
// it stops early only after syntax errors, because decoding an invalid file
// gives confusing follow-on errors.
//
// Step bodies are NOT evaluated here: a step's attributes refer to
// service.* and run.*, so the planner evaluates them once per service with
// the EvalContext built by Config.EvalContext.
package dsl

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Config is everything read from one root plan file and the files it
// includes. Slices keep declaration order: files in the order they were
// read (the root file's own blocks first, wherever its include attribute
// stands, then each included file in include order, glob matches sorted,
// an included file's own includes right after its blocks), and within a
// file, source order.
type Config struct {
	// Root is the path of the root file as given by the caller.
	Root string
	// Files lists every file read, root first, as cleaned paths.
	Files []string
	// Sources maps each file path in Files to its bytes, so diagnostics
	// can be printed with the source line (hcl.NewDiagnosticTextWriter).
	Sources map[string][]byte

	// Incomplete is true when a file could not be read or parsed, so its
	// blocks are missing: checks across blocks (dependencies, pipelines)
	// would only report confusing follow-on errors and should wait.
	Incomplete bool

	Variables []*Variable
	// VarValues is the object bound to `var` in expressions: every declared
	// variable with its --var value or its default.
	VarValues cty.Value
	// Defaults is the one defaults block of all the files (a second is an
	// error); the zero value, every *Set false, when there is none.
	Defaults  Defaults
	Pipelines []*Pipeline
	Services  []*Service
	Plans     []*Plan
	// Notifications are the notify blocks, in declaration order.
	Notifications []*Notify
	// Hosts are the host blocks: machines reached over ssh.
	Hosts []*Host
}

// Variable is a `variable "name" { default = ... description = "..." }` block.
type Variable struct {
	Name        string
	Default     cty.Value // cty.NilVal when no default was given
	Description string
	DeclRange   hcl.Range
}

// Defaults is the `defaults` block. Durations are parsed with
// time.ParseDuration; a bad one is a diagnostic on the attribute's expression.
type Defaults struct {
	HealthTimeout     time.Duration
	HealthTimeoutSet  bool
	HealthRetries     int
	HealthRetriesSet  bool
	HealthInterval    time.Duration
	HealthIntervalSet bool
	EventsLog         string
	EventsLogSet      bool
	// MinFreeSpace is the fewest bytes a run's working directories'
	// filesystems must have free before anything changes.
	MinFreeSpace    int64
	MinFreeSpaceSet bool
	DeclRange       hcl.Range
}

// Pipeline is a `pipeline "name" { step "type" "name" {...} ... }` block.
type Pipeline struct {
	Name      string
	Steps     []*Step
	NameRange hcl.Range
	DeclRange hcl.Range
}

// Step is one `step "type" "name" { ... }` block inside a pipeline. Its
// attributes are kept unevaluated: the planner decodes Body against the step
// type's spec once per service.
type Step struct {
	Type string
	Name string
	// If is the `if` attribute's expression, nil when absent. It is
	// evaluated per service by the planner; false drops the step.
	If hcl.Expression
	// Body holds the step's remaining content (everything but `if`).
	Body      hcl.Body
	TypeRange hcl.Range // the first label
	NameRange hcl.Range // the second label
	DeclRange hcl.Range
}

// Service is a `service "name" { ... }` block. Its attributes may use var.*
// and the standard functions, and are evaluated at decode time.
type Service struct {
	Name        string
	Unit        string
	Type        string
	Pipeline    string // the `pipeline` attribute; "" when PipelineSet is false
	PipelineSet bool
	WorkingDir  string
	DependsOn   []Dependency
	Tags        []string
	// Meta is the `meta` map attribute (free-form strings), reachable from
	// step expressions as service.meta.KEY.
	Meta   map[string]string
	Health *Health // nil when the service has no health block

	// Hosts are the `hosts` entries and HostTags the `host_tags`: the
	// service runs on every named host and every host with one of the
	// tags. Neither set: it runs where rollout runs.
	Hosts         []Dependency
	HostTags      []string
	HostTagsRange hcl.Range
	// MaxUnavailable is how many of the service's instances may be down
	// at once (a number or a percentage of them); unset = no limit beyond
	// --parallel.
	MaxUnavailable    Amount
	MaxUnavailableSet bool
	// Serial is Ansible's serial: batch sizes in order, the last one
	// repeated until every instance is covered. Empty = one batch.
	Serial      []Amount
	SerialRange hcl.Range

	// Instances are the instances of a template unit ("api@.service"):
	// `instances = ["1", "2"]`, or a count N for "1".."N". Each runs as
	// unit "api@NAME.service", on every host of the service.
	Instances      []string
	InstancesSet   bool
	InstancesRange hcl.Range
	// Colors are the two instances of a template unit a blue-green
	// service takes turns serving with ("blue", "green"); see decodeColors.
	Colors      []string
	ColorsSet   bool
	ColorsRange hcl.Range
	// PortExpr is the `port` attribute, kept unevaluated: it may read
	// service.instance and service.instance_index, or be a map from
	// instance name to port; see InstancePort. Expressions read it as
	// service.port.
	PortExpr hcl.Expression
	// Canary is the service's canary block, nil when it has none.
	Canary *Canary

	NameRange     hcl.Range
	UnitRange     hcl.Range
	TypeRange     hcl.Range
	PipelineRange hcl.Range
	DeclRange     hcl.Range
}

// Amount is a count or a percentage, such as 2 or "25%".
type Amount struct {
	N       int
	Percent bool
}

// Of resolves the amount against total, rounding a percentage down but
// never below 1 (Ansible's serial does the same).
func (a Amount) Of(total int) int {
	if !a.Percent {
		return a.N
	}
	n := total * a.N / 100
	return max(n, 1)
}

func (a Amount) String() string {
	if a.Percent {
		return fmt.Sprintf("%d%%", a.N)
	}
	return fmt.Sprint(a.N)
}

// Dependency is one entry of depends_on with the range of its string, so an
// unknown name or a cycle can point at the exact element.
type Dependency struct {
	Name  string
	Range hcl.Range
}

// Health kinds.
const (
	HealthHTTP    = "http"
	HealthTCP     = "tcp"
	HealthSystemd = "systemd"
	HealthExec    = "exec"
)

// Health is a service's `health "kind" { ... }` block. Zero/unset fields take
// the values of Defaults in the planner.
type Health struct {
	Kind string // one of the Health* constants
	// http
	URL          string
	ExpectStatus int // 0 means any 2xx
	// tcp
	Address string
	// exec
	Command []string
	// URLExpr, AddressExpr and CommandExpr are kept when url, address or
	// command read host.* or service.*: the planner evaluates them for each
	// instance (the fields above then hold the value for a sample one).
	URLExpr     hcl.Expression
	AddressExpr hcl.Expression
	CommandExpr hcl.Expression

	Timeout     time.Duration
	TimeoutSet  bool
	Retries     int
	RetriesSet  bool
	Interval    time.Duration
	IntervalSet bool

	KindRange hcl.Range
	DeclRange hcl.Range
}

// On-failure policies of a plan block.
const (
	OnFailureAbort    = "abort"
	OnFailureContinue = "continue"
)

// Plan is a `plan "name" { ... }` block: a canned selection and policy.
type Plan struct {
	Name           string
	Select         Selection
	MaxParallel    int
	MaxParallelSet bool
	OnFailure      string // OnFailureAbort when unset
	MaxFailures    int    // 0 = no limit
	// Batches are the `batch` blocks: at most MaxUnavailable services
	// matching Types/Tags restarting at once.
	Batches   []*Batch
	NameRange hcl.Range
	DeclRange hcl.Range
}

// Selection is a plan's `select = { names = [...], types = [...], tags = [...] }`.
// A service is selected when it matches any listed name, type or tag; an
// empty selection selects every service.
type Selection struct {
	Names []string
	Types []string
	Tags  []string
	Range hcl.Range
}

// Batch is `batch { types = [...] tags = [...] max_unavailable = 1 }` in a plan.
type Batch struct {
	Types          []string
	Tags           []string
	MaxUnavailable int
	DeclRange      hcl.Range
}

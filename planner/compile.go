package planner

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/customdecode"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner/dag"
)

// defaultPipeline is the pipeline a service falls back to.
const defaultPipeline = "default"

// Compile turns cfg into a Plan. It collects every diagnostic (unknown
// dependencies with a did-you-mean, cycles with their path, services without
// a pipeline, unknown step types, bad step arguments, unused pipelines as
// warnings, unknown --service names) and returns a nil Plan when any is an
// error.
//
// Every service's pipeline is instantiated and checked, selected or not, so
// that `plan validate` reports everything; the Plan only holds the selected
// services.
func Compile(cfg *dsl.Config, opts Options) (*Plan, hcl.Diagnostics) {
	if cfg == nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No configuration",
			Detail:   "There is no configuration to compile. Load a plan file first.",
		}}
	}
	c := newCompiler(cfg, opts)
	c.base = cfg.EvalContext(c.runValue, cty.NilVal)
	c.indexConfig()
	c.choosePipelines()
	c.checkStepTypes()
	graph, acyclic := c.buildGraph()
	c.resolveHosts()
	services := make([]*Service, len(c.services))
	for i := range c.services {
		services[i] = c.compileService(i, c.firstHost(i), c.firstInstance(i))
	}
	c.warnUnusedPipelines()
	block, selected := c.selectServices(graph, acyclic)
	c.checkUniqueArgs(services, selected)
	c.checkTrafficRestored(services, selected)
	c.checkCanaries()
	if c.diags.HasErrors() {
		return nil, c.diags
	}
	plan := c.order(block, services, selected)
	c.expandInstances(plan)
	if c.diags.HasErrors() {
		return nil, c.diags
	}
	return plan, c.diags
}

// compiler holds the state of one Compile call.
type compiler struct {
	cfg  *dsl.Config
	opts Options

	diags hcl.Diagnostics
	// reported de-duplicates diagnostics that would repeat identically for
	// every service using the same pipeline.
	reported map[diagKey]bool

	services     []*dsl.Service // declaration order, nil entries and duplicates dropped
	serviceIndex map[string]int // name → index in services
	serviceNames []string
	pipelines    map[string]*dsl.Pipeline
	pipeNames    []string
	chosen       []*dsl.Pipeline // per service index: its pipeline, nil when none
	// deps holds per service index its known dependencies as indices, in
	// depends_on order without repeats.
	deps [][]int
	// steps holds what is known of each step block across services.
	steps    map[*dsl.Step]*stepInfo
	runValue cty.Value
	// hosts indexes the host blocks by name; hostNames is their
	// declaration order; hostsOf holds per service index the hosts it
	// runs on (nil: where rollout runs).
	hosts     map[string]*dsl.Host
	hostNames []string
	hostsOf   [][]*dsl.Host
	// base is the evaluation context without a service; a service's
	// context is a child binding only `service`, so the function table is
	// built once per Compile rather than once per service.
	base *hcl.EvalContext
}

// stepInfo is what the compiler knows of one step block.
type stepInfo struct {
	typ *StepType // nil when the type is unknown (reported once)
	// perService is set when the step's `if` or arguments refer to
	// service.*; otherwise the step evaluates alike for every service, so
	// it is evaluated once and its result shared.
	perService bool
	evaluated  bool
	keep       bool // enabled, and decoded and validated without error
	args       map[string]cty.Value
	// attrs, for a per-service step whose spec holds only plain attribute
	// specs, is its body's content, taken once: decoding it per service
	// then only evaluates expressions (hcldec would rebuild the schema and
	// re-read the body for every service). contentDiags are the
	// service-independent diagnostics of taking it.
	attrs        *hcl.BodyContent
	attrSpecs    map[string]*hcldec.AttrSpec
	attrOrder    []string // the keys of attrSpecs in source order
	contentDiags hcl.Diagnostics
}

// prepareAttrs fills info.attrs when every spec of the step type is a
// plain AttrSpec; other specs go through hcldec.Decode.
func (info *stepInfo) prepareAttrs(body hcl.Body, spec hcldec.ObjectSpec) {
	if body == nil || len(spec) == 0 {
		return
	}
	specs := make(map[string]*hcldec.AttrSpec, len(spec))
	for key, sp := range spec {
		as, ok := sp.(*hcldec.AttrSpec)
		if !ok || as == nil || customdecode.CustomExpressionDecoderForType(as.Type) != nil {
			return
		}
		specs[key] = as
	}
	info.attrs, info.contentDiags = body.Content(hcldec.ImpliedSchema(spec))
	info.attrSpecs = specs
	info.attrOrder = make([]string, 0, len(specs))
	for key := range specs {
		info.attrOrder = append(info.attrOrder, key)
	}
	// Source order, so that diagnostics come out in the order a reader
	// meets the attributes (unset ones, which report nothing, by name).
	pos := func(key string) int {
		if a, ok := info.attrs.Attributes[specs[key].Name]; ok {
			return a.NameRange.Start.Byte
		}
		return math.MaxInt
	}
	slices.SortFunc(info.attrOrder, func(a, b string) int {
		return cmp.Or(cmp.Compare(pos(a), pos(b)), cmp.Compare(a, b))
	})
}

// sortBySource orders diags by where their subject starts (file, then
// offset), keeping the order of those at the same place; diagnostics
// without a subject go last.
func sortBySource(diags hcl.Diagnostics) {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil && b.Subject == nil:
			return 0
		case a.Subject == nil:
			return 1
		case b.Subject == nil:
			return -1
		}
		return cmp.Or(cmp.Compare(a.Subject.Filename, b.Subject.Filename), cmp.Compare(a.Subject.Start.Byte, b.Subject.Start.Byte))
	})
}

type diagKey struct {
	severity hcl.DiagnosticSeverity
	summary  string
	detail   string
	subject  hcl.Range
}

func newCompiler(cfg *dsl.Config, opts Options) *compiler {
	return &compiler{
		cfg:          cfg,
		opts:         opts,
		reported:     map[diagKey]bool{},
		serviceIndex: make(map[string]int, len(cfg.Services)),
		pipelines:    make(map[string]*dsl.Pipeline, len(cfg.Pipelines)),
		steps:        map[*dsl.Step]*stepInfo{},
		runValue: cty.ObjectVal(map[string]cty.Value{
			"deploy":          cty.BoolVal(opts.Run.Deploy),
			"deploy_path":     cty.StringVal(opts.Run.DeployPath),
			"skip_migrations": cty.BoolVal(opts.Run.SkipMigrations),
			"force":           cty.BoolVal(opts.Run.Force),
			"dry_run":         cty.BoolVal(opts.Run.DryRun),
		}),
	}
}

// add appends diagnostics, leaving out any already reported with the same
// severity, summary, detail and subject.
func (c *compiler) add(diags ...*hcl.Diagnostic) {
	for _, d := range diags {
		if d == nil {
			continue
		}
		k := diagKey{severity: d.Severity, summary: d.Summary, detail: d.Detail}
		if d.Subject != nil {
			k.subject = *d.Subject
		}
		if c.reported[k] {
			continue
		}
		c.reported[k] = true
		c.diags = append(c.diags, d)
	}
}

// indexConfig indexes services and pipelines by name. Duplicates are the dsl
// package's to report; the first declaration wins here.
func (c *compiler) indexConfig() {
	for _, svc := range c.cfg.Services {
		if svc == nil {
			continue
		}
		if _, dup := c.serviceIndex[svc.Name]; dup {
			continue
		}
		c.serviceIndex[svc.Name] = len(c.services)
		c.services = append(c.services, svc)
		c.serviceNames = append(c.serviceNames, svc.Name)
	}
	for _, p := range c.cfg.Pipelines {
		if p == nil {
			continue
		}
		if _, dup := c.pipelines[p.Name]; dup {
			continue
		}
		c.pipelines[p.Name] = p
		c.pipeNames = append(c.pipeNames, p.Name)
	}
}

// choosePipelines picks each service's pipeline: its pipeline attribute,
// else the pipeline named after its type, else "default".
func (c *compiler) choosePipelines() {
	c.chosen = make([]*dsl.Pipeline, len(c.services))
	for i, svc := range c.services {
		if svc.PipelineSet {
			if p, ok := c.pipelines[svc.Pipeline]; ok {
				c.chosen[i] = p
				continue
			}
			c.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown pipeline",
				Detail: fmt.Sprintf("Service %q uses pipeline %q, which is not declared.%s Declared pipelines: %s.",
					svc.Name, svc.Pipeline, dsl.DidYouMean(svc.Pipeline, c.pipeNames), quoteList(c.pipeNames)),
				Subject: rangePtr(svc.PipelineRange, svc.DeclRange),
			})
			continue
		}
		if svc.Type != "" {
			if p, ok := c.pipelines[svc.Type]; ok {
				c.chosen[i] = p
				continue
			}
		}
		if p, ok := c.pipelines[defaultPipeline]; ok {
			c.chosen[i] = p
			continue
		}
		var detail string
		subject := rangePtr(svc.NameRange, svc.DeclRange)
		if svc.Type != "" {
			detail = fmt.Sprintf("Service %q has type %q, but there is no pipeline %q and no pipeline %q. Declare one of them, or set pipeline = \"NAME\" on the service.",
				svc.Name, svc.Type, svc.Type, defaultPipeline)
			subject = rangePtr(svc.TypeRange, svc.NameRange)
		} else {
			detail = fmt.Sprintf("Service %q has no type and there is no pipeline %q. Declare a pipeline %q, or set type or pipeline on the service.",
				svc.Name, defaultPipeline, defaultPipeline)
		}
		c.add(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No pipeline for service",
			Detail:   detail,
			Subject:  subject,
		})
	}
}

// checkStepTypes looks up every step block's type once, so an unknown type
// is reported once per step block whatever the number of services using it.
func (c *compiler) checkStepTypes() {
	known := make([]string, 0, len(c.opts.StepTypes))
	for name := range c.opts.StepTypes {
		known = append(known, name)
	}
	slices.Sort(known)
	for _, name := range c.pipeNames {
		for _, step := range c.pipelines[name].Steps {
			if step == nil {
				continue
			}
			if st, ok := c.opts.StepTypes[step.Type]; ok {
				info := &stepInfo{typ: &st, perService: refersToService(step, st.Spec)}
				if info.perService {
					info.prepareAttrs(step.Body, st.Spec)
				}
				c.steps[step] = info
				continue
			}
			c.steps[step] = &stepInfo{}
			c.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown step type",
				Detail: fmt.Sprintf("Step %q in pipeline %q has type %q, which is not a step type.%s Step types: %s.",
					step.Name, name, step.Type, dsl.DidYouMean(step.Type, known), quoteList(known)),
				Subject: rangePtr(step.TypeRange, step.DeclRange),
			})
		}
	}
}

// buildGraph connects dependency → dependent for every known dependency,
// reports unknown dependencies and every cycle, and says whether the graph
// is acyclic.
func (c *compiler) buildGraph() (*dag.Graph, bool) {
	g := dag.New(len(c.services))
	for _, svc := range c.services {
		g.Add(svc.Name)
	}
	c.deps = make([][]int, len(c.services))
	for i, svc := range c.services {
		for _, dep := range svc.DependsOn {
			j, ok := c.serviceIndex[dep.Name]
			if !ok {
				c.add(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Unknown dependency",
					Detail: fmt.Sprintf("Service %q depends on %q, which is not declared.%s",
						svc.Name, dep.Name, dsl.DidYouMean(dep.Name, c.serviceNames)),
					Subject: rangePtr(dep.Range, svc.DeclRange),
				})
				continue
			}
			if !slices.Contains(c.deps[i], j) {
				c.deps[i] = append(c.deps[i], j)
			}
			g.Connect(dep.Name, svc.Name)
		}
	}
	cycles := g.Cycles()
	for _, cycle := range cycles {
		c.reportCycle(cycle)
	}
	return g, len(cycles) == 0
}

// reportCycle reports one cycle. The graph's edges run dependency →
// dependent; the diagnostic reads the other way ("a → b" = a depends on b)
// and starts at the member declared first.
func (c *compiler) reportCycle(cycle []string) {
	path := slices.Clone(cycle)
	slices.Reverse(path)
	first := 0
	for i, name := range path {
		if c.serviceIndex[name] < c.serviceIndex[path[first]] {
			first = i
		}
	}
	path = append(path[first:], path[:first]...)
	head := c.services[c.serviceIndex[path[0]]]
	next := path[0]
	if len(path) > 1 {
		next = path[1]
	}
	subject := rangePtr(head.DeclRange, head.DeclRange)
	for _, dep := range head.DependsOn {
		if dep.Name == next {
			subject = rangePtr(dep.Range, head.DeclRange)
			break
		}
	}
	var detail strings.Builder
	if len(path) == 1 {
		fmt.Fprintf(&detail, "Service %q depends on itself, so it could never start. Remove %q from its depends_on.", path[0], path[0])
	} else {
		fmt.Fprintf(&detail, "These services depend on each other in a circle, so none of them could start: %s → %s. Remove one of these dependencies to break the cycle.",
			strings.Join(path, " → "), path[0])
	}
	detail.WriteString(" The services are declared at:")
	for _, name := range path {
		svc := c.services[c.serviceIndex[name]]
		fmt.Fprintf(&detail, "\n  - %s at %s:%d", name, svc.DeclRange.Filename, svc.DeclRange.Start.Line)
	}
	c.add(&hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Dependency cycle",
		Detail:   detail.String(),
		Subject:  subject,
	})
}

// compileService instantiates svc's pipeline: each step's `if` evaluated,
// its body decoded against its type's spec and validated. It returns the
// service without Needs and Wave; those come with the selection.
//
// host is the host the instance runs on, bound to host.* in step
// arguments and health url, address and command; nil is where rollout runs.
// inst is the instance of a template unit (service.instance,
// service.instance_index, service.port); its zero value for a service
// without instances.
func (c *compiler) compileService(index int, host *dsl.Host, inst dsl.Instance) *Service {
	svc := c.services[index]
	out := &Service{
		Name:          svc.Name,
		Service:       svc.Name,
		Instance:      inst.Name,
		InstanceIndex: inst.Index,
		Port:          inst.Port,
		Colors:        slices.Clone(svc.Colors),
		Unit:          dsl.InstanceUnit(svc.Unit, inst.Name),
		Type:          svc.Type,
		WorkingDir:    svc.WorkingDir,
		Tags:          slices.Clone(svc.Tags),
		Health:        c.health(svc.Health),
		DeclRange:     svc.DeclRange,
	}
	if host != nil {
		out.Host = plannerHost(host)
	}
	c.instanceHealth(out.Health, svc, host, inst)
	if deps := c.deps[index]; len(deps) > 0 {
		out.DependsOn = make([]string, len(deps))
		for k, j := range deps {
			out.DependsOn[k] = c.services[j].Name
		}
	}
	pipeline := c.chosen[index]
	if pipeline == nil {
		return out
	}
	out.Pipeline = pipeline.Name
	out.Steps = make([]*Step, 0, len(pipeline.Steps))
	var ctx *hcl.EvalContext // built for the first step that refers to service.*
	for _, step := range pipeline.Steps {
		info := c.steps[step]
		if step == nil || info == nil || info.typ == nil {
			continue
		}
		st := info.typ
		var keep bool
		var args map[string]cty.Value
		if info.perService {
			if ctx == nil {
				ctx = c.base.NewChild()
				ctx.Variables = map[string]cty.Value{"service": dsl.InstanceValue(svc, inst), "host": dsl.HostValue(host)}
			}
			keep, args = c.evalStep(step, info, ctx)
		} else {
			if !info.evaluated {
				info.keep, info.args = c.evalStep(step, info, c.base)
				info.evaluated = true
			}
			keep, args = info.keep, info.args
			if len(args) > 0 {
				// Each service gets its own map, so a consumer changing
				// one service's arguments cannot touch another's.
				args = maps.Clone(args)
			}
		}
		if !keep || (c.opts.Run.Force && st.Check) {
			continue
		}
		if host != nil && st.NotOnHosts != "" && (st.OnHosts == nil || !st.OnHosts(args)) {
			// Reported once per service and step: the detail names no host.
			c.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Step type does not run on hosts",
				Detail: fmt.Sprintf("Step %q (%s) in pipeline %q cannot act on service %q's instances on its hosts: %s. Run it in a service without hosts, or leave it out of this pipeline.",
					step.Name, step.Type, pipeline.Name, svc.Name, st.NotOnHosts),
				Subject: rangePtr(step.TypeRange, step.DeclRange),
			})
			continue
		}
		if st.CheckService != nil {
			if why := st.CheckService(args, out); why != "" {
				c.add(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Step does not fit its service",
					Detail:   fmt.Sprintf("Step %q (%s) in pipeline %q does not fit service %q: %s.", step.Name, step.Type, pipeline.Name, svc.Name, why),
					Subject:  rangePtr(step.TypeRange, step.DeclRange),
				})
				continue
			}
		}
		ps := &Step{
			Name:      step.Name,
			Type:      step.Type,
			Args:      args,
			Check:     st.Check,
			Rollback:  st.Rollback,
			DeclRange: step.DeclRange,
		}
		if st.Estimate != nil {
			ps.Estimate = st.Estimate(args, out.Health)
		}
		if st.Detail != nil {
			ps.Detail = st.Detail(args, out)
		}
		if st.Summary != nil {
			ps.Summary = st.Summary(args)
		}
		if st.Needs != nil {
			ps.Needs = st.Needs(args, out)
		}
		out.Steps = append(out.Steps, ps)
	}
	return out
}

// evalStep evaluates one step in ctx: its `if`, then its arguments. It
// reports whether the step is kept.
func (c *compiler) evalStep(step *dsl.Step, info *stepInfo, ctx *hcl.EvalContext) (bool, map[string]cty.Value) {
	if !c.stepEnabled(step, ctx) {
		return false, nil
	}
	args, ok := c.decodeStep(step, info, ctx)
	return ok, args
}

// refersToService reports whether a step's `if` or arguments refer to
// service.*, which makes its result differ between services.
func refersToService(step *dsl.Step, spec hcldec.ObjectSpec) bool {
	var refs []hcl.Traversal
	if step.If != nil {
		refs = append(refs, step.If.Variables()...)
	}
	if step.Body != nil && spec != nil {
		refs = append(refs, hcldec.Variables(step.Body, spec)...)
	}
	for _, ref := range refs {
		if ref.RootName() == "service" || ref.RootName() == "host" {
			return true
		}
	}
	return false
}

// stepEnabled evaluates a step's `if`; a missing `if` is true. A condition
// that is not a known bool is an error and drops the step.
func (c *compiler) stepEnabled(step *dsl.Step, ctx *hcl.EvalContext) bool {
	if step.If == nil {
		return true
	}
	val, diags := step.If.Value(ctx)
	c.add(diags...)
	if diags.HasErrors() {
		return false
	}
	rng := step.If.Range()
	bad := func(why string) bool {
		c.add(&hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Invalid if condition",
			Detail:      fmt.Sprintf("The if condition of step %q must be true or false, but %s. Write a bool expression, such as run.deploy or !run.skip_migrations.", step.Name, why),
			Subject:     &rng,
			Expression:  step.If,
			EvalContext: ctx,
		})
		return false
	}
	switch {
	case val.IsNull():
		return bad("it is null")
	case !val.IsWhollyKnown():
		return bad("its value is not known when the plan is compiled")
	}
	b, err := convert.Convert(val, cty.Bool)
	if err != nil {
		return bad(fmt.Sprintf("it is a %s", val.Type().FriendlyName()))
	}
	return b.True()
}

// decodeStep decodes a step's body for one service and validates it.
func (c *compiler) decodeStep(step *dsl.Step, info *stepInfo, ctx *hcl.EvalContext) (map[string]cty.Value, bool) {
	st := info.typ
	body := step.Body
	if body == nil {
		body = hcl.EmptyBody()
	}
	spec := st.Spec
	if spec == nil {
		spec = hcldec.ObjectSpec{}
	}
	var args map[string]cty.Value
	if info.attrs != nil {
		var ok bool
		if args, ok = c.decodeAttrs(info, ctx); !ok {
			return nil, false
		}
	} else {
		val, diags := hcldec.Decode(body, spec, ctx)
		// hcldec decodes an ObjectSpec in map order: sort, or the same
		// plan prints its problems in a different order from run to run.
		sortBySource(diags)
		c.add(diags...)
		if diags.HasErrors() || val.IsNull() || !val.Type().IsObjectType() {
			return nil, false
		}
		args = make(map[string]cty.Value, len(spec))
		for name := range spec {
			if val.Type().HasAttribute(name) {
				args[name] = val.GetAttr(name)
			}
		}
	}
	if st.Validate != nil {
		rng := func(arg string) hcl.Range {
			if s, ok := spec[arg]; ok {
				return hcldec.SourceRange(body, s)
			}
			return step.DeclRange
		}
		vd := st.Validate(args, rng)
		c.add(vd...)
		if vd.HasErrors() {
			return nil, false
		}
	}
	return args, true
}

// decodeAttrs is hcldec's decoding of plain attribute specs, done on the
// body content taken once (see stepInfo.attrs), with the same diagnostics.
func (c *compiler) decodeAttrs(info *stepInfo, ctx *hcl.EvalContext) (map[string]cty.Value, bool) {
	c.add(info.contentDiags...)
	if info.contentDiags.HasErrors() {
		return nil, false
	}
	args := make(map[string]cty.Value, len(info.attrSpecs))
	failed := false
	for _, key := range info.attrOrder {
		spec := info.attrSpecs[key]
		attr, ok := info.attrs.Attributes[spec.Name]
		if !ok {
			args[key] = cty.NullVal(spec.Type.WithoutOptionalAttributesDeep())
			continue
		}
		val, diags := attr.Expr.Value(ctx)
		c.add(diags...)
		if diags.HasErrors() {
			failed = true
			continue
		}
		conv, err := convert.Convert(val, spec.Type)
		if err != nil {
			failed = true
			c.add(&hcl.Diagnostic{
				Severity:    hcl.DiagError,
				Summary:     "Incorrect attribute value type",
				Detail:      fmt.Sprintf("Inappropriate value for attribute %q: %s.", spec.Name, err.Error()),
				Subject:     attr.Expr.Range().Ptr(),
				Context:     hcl.RangeBetween(attr.NameRange, attr.Expr.Range()).Ptr(),
				Expression:  attr.Expr,
				EvalContext: ctx,
			})
			continue
		}
		args[key] = conv
	}
	return args, !failed
}

// health applies defaults to a service's health block; no block means the
// systemd check.
func (c *compiler) health(h *dsl.Health) *Health {
	d := c.cfg.Defaults
	def := DefaultHealth()
	out := &def
	if d.HealthTimeoutSet {
		out.Timeout = d.HealthTimeout
	}
	if d.HealthRetriesSet {
		out.Retries = d.HealthRetries
	}
	if d.HealthIntervalSet {
		out.Interval = d.HealthInterval
	}
	if h == nil {
		return out
	}
	if h.Kind != "" {
		out.Kind = h.Kind
	}
	out.URL = h.URL
	out.ExpectStatus = h.ExpectStatus
	out.Address = h.Address
	out.Command = slices.Clone(h.Command)
	if h.TimeoutSet {
		out.Timeout = h.Timeout
	}
	if h.RetriesSet {
		out.Retries = h.Retries
	}
	if h.IntervalSet {
		out.Interval = h.Interval
	}
	return out
}

// warnUnusedPipelines warns about pipelines no service chooses. The
// "default" pipeline is the fallback for types without their own, so it is
// never unused; and a file without services (a shared pipelines file checked
// on its own) has nothing to use its pipelines yet.
func (c *compiler) warnUnusedPipelines() {
	if len(c.cfg.Services) == 0 {
		return
	}
	used := map[string]bool{defaultPipeline: true}
	for _, p := range c.chosen {
		if p != nil {
			used[p.Name] = true
		}
	}
	for _, name := range c.pipeNames {
		if used[name] {
			continue
		}
		p := c.pipelines[name]
		c.add(&hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Unused pipeline",
			Detail: fmt.Sprintf("No service uses pipeline %q: none has type %q or pipeline = %q. Remove the pipeline, or point a service at it.",
				name, name, name),
			Subject: rangePtr(p.NameRange, p.DeclRange),
		})
	}
}

// rangePtr returns a pointer to a copy of r, or of fallback when r is the
// zero range (a field the dsl left unset).
func rangePtr(r, fallback hcl.Range) *hcl.Range {
	if r.Filename == "" && r.Start.Byte == 0 && r.End.Byte == 0 {
		r = fallback
	}
	return &r
}

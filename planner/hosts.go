package planner

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner/dag"
)

// InstanceName names a service's instance on a host.
func InstanceName(service, host string) string {
	return InstanceKey(service, "", host)
}

// InstanceKey names one instance of a service: "SERVICE", "SERVICE:INSTANCE"
// for an instance of a template unit, "SERVICE@HOST" on a host, and
// "SERVICE:INSTANCE@HOST" for both.
func InstanceKey(service, instance, host string) string {
	name := service
	if instance != "" {
		name += ":" + instance
	}
	if host != "" {
		name += "@" + host
	}
	return name
}

func plannerHost(h *dsl.Host) *Host {
	return &Host{
		Name:       h.Name,
		Address:    h.Address,
		User:       h.User,
		Port:       h.Port,
		SSHArgs:    slices.Clone(h.SSHArgs),
		SystemdBus: h.SystemdBus,
		Tags:       slices.Clone(h.Tags),
		DeclRange:  h.DeclRange,
	}
}

// resolveHosts finds every service's hosts (its hosts entries, then every
// host with one of its host_tags, in declaration order without repeats),
// and reports unknown hosts, tags no host has, and hosts no service uses.
func (c *compiler) resolveHosts() {
	c.hosts = make(map[string]*dsl.Host, len(c.cfg.Hosts))
	for _, h := range c.cfg.Hosts {
		if h == nil {
			continue
		}
		if _, dup := c.hosts[h.Name]; dup {
			continue // the dsl reported it
		}
		c.hosts[h.Name] = h
		c.hostNames = append(c.hostNames, h.Name)
	}
	c.hostsOf = make([][]*dsl.Host, len(c.services))
	used := map[string]bool{}
	for i, svc := range c.services {
		var list []*dsl.Host
		add := func(h *dsl.Host) {
			if !slices.Contains(list, h) {
				list = append(list, h)
			}
			used[h.Name] = true
		}
		for _, ref := range svc.Hosts {
			h, ok := c.hosts[ref.Name]
			if !ok {
				detail := fmt.Sprintf("Service %q runs on host %q, which is not declared.%s", svc.Name, ref.Name, dsl.DidYouMean(ref.Name, c.hostNames))
				if len(c.hostNames) > 0 {
					detail += fmt.Sprintf(" Declared hosts: %s.", quoteList(c.hostNames))
				} else {
					detail += ` Declare it with a host "NAME" { address = "..." } block.`
				}
				c.add(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Unknown host",
					Detail:   detail,
					Subject:  rangePtr(ref.Range, svc.DeclRange),
				})
				continue
			}
			add(h)
		}
		for _, tag := range svc.HostTags {
			found := false
			for _, name := range c.hostNames {
				h := c.hosts[name]
				if slices.Contains(h.Tags, tag) {
					add(h)
					found = true
				}
			}
			if !found {
				c.add(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "No host with tag",
					Detail:   fmt.Sprintf("Service %q runs on the hosts tagged %q, but no host has that tag. Add the tag to a host's tags, or fix host_tags.", svc.Name, tag),
					Subject:  rangePtr(svc.HostTagsRange, svc.DeclRange),
				})
			}
		}
		// Instances follow the hosts' declaration order, whatever the
		// order of the service's list: batches are then predictable.
		slices.SortStableFunc(list, func(a, b *dsl.Host) int {
			return slices.Index(c.hostNames, a.Name) - slices.Index(c.hostNames, b.Name)
		})
		c.hostsOf[i] = list
	}
	for _, name := range c.hostNames {
		if used[name] {
			continue
		}
		h := c.hosts[name]
		c.add(&hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Unused host",
			Detail:   fmt.Sprintf("No service runs on host %q: none lists it in hosts or has a host_tags entry among its tags. Remove the host, or add it to a service.", name),
			Subject:  rangePtr(h.NameRange, h.DeclRange),
		})
	}
	for _, name := range c.opts.Hosts {
		if _, ok := c.hosts[name]; !ok {
			c.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown host",
				Detail:   fmt.Sprintf("There is no host %q to select with --host.%s", name, dsl.DidYouMean(name, c.hostNames)),
			})
		}
	}
}

func (c *compiler) firstHost(i int) *dsl.Host {
	if len(c.hostsOf[i]) == 0 {
		return nil
	}
	return c.hostsOf[i][0]
}

// instanceHealth evaluates the health attributes that read host.* or
// service.* for one instance on host.
func (c *compiler) instanceHealth(out *Health, svc *dsl.Service, host *dsl.Host, inst dsl.Instance) {
	h := svc.Health
	if h == nil || (h.URLExpr == nil && h.AddressExpr == nil && h.CommandExpr == nil) {
		return
	}
	ctx := c.instanceContext(svc, host, inst)
	// An error here is one host's: say which (the check at decode time
	// used a placeholder host).
	add := func(diags hcl.Diagnostics) {
		for _, d := range diags {
			if host != nil && d.Severity == hcl.DiagError {
				d.Detail = strings.TrimSpace(d.Detail + fmt.Sprintf(" (With host.* of host %q.)", host.Name))
			}
			c.add(d)
		}
	}
	str := func(expr hcl.Expression) (string, bool) {
		v, diags := expr.Value(ctx)
		add(diags)
		if diags.HasErrors() {
			return "", false
		}
		v, _ = v.UnmarkDeep()
		sv, err := convert.Convert(v, cty.String)
		if err != nil || sv.IsNull() || !sv.IsWhollyKnown() {
			return "", false
		}
		return sv.AsString(), true
	}
	if h.URLExpr != nil {
		if s, ok := str(h.URLExpr); ok {
			out.URL = s
		}
	}
	if h.AddressExpr != nil {
		if s, ok := str(h.AddressExpr); ok {
			out.Address = s
		}
	}
	if h.CommandExpr != nil {
		v, diags := h.CommandExpr.Value(ctx)
		add(diags)
		if !diags.HasErrors() {
			v, _ = v.UnmarkDeep()
			if lv, err := convert.Convert(v, cty.List(cty.String)); err == nil && !lv.IsNull() && lv.IsWhollyKnown() {
				out.Command = out.Command[:0:0]
				for _, e := range lv.AsValueSlice() {
					if !e.IsNull() {
						out.Command = append(out.Command, e.AsString())
					}
				}
			}
		}
	}
}

// instanceContext binds host.* and service.* (with its instance) for one
// instance.
func (c *compiler) instanceContext(svc *dsl.Service, host *dsl.Host, inst dsl.Instance) *hcl.EvalContext {
	ctx := c.base.NewChild()
	ctx.Variables = map[string]cty.Value{"host": dsl.HostValue(host), "service": dsl.InstanceValue(svc, inst)}
	return ctx
}

// instancesOf lists the template instances of the service at index i,
// with their ports; a service without instances has one, the zero
// Instance.
func (c *compiler) instancesOf(i int) []dsl.Instance {
	svc := c.services[i]
	if len(svc.Instances) == 0 {
		return []dsl.Instance{{}}
	}
	out := make([]dsl.Instance, len(svc.Instances))
	for k, name := range svc.Instances {
		out[k] = dsl.Instance{Name: name, Index: k}
		port, diags := svc.InstancePort(c.base, out[k])
		c.add(diags...)
		out[k].Port = port
	}
	return out
}

func (c *compiler) firstInstance(i int) dsl.Instance {
	return c.instancesOf(i)[0]
}

// expandInstances turns every planned service that runs on hosts or has
// template instances into one instance per (host, instance) (narrowed by
// --host), makes each instance wait for all instances of the services it
// needs, adds the serial batches, the canary and the max_unavailable
// limits, and recomputes order and waves over instances.
func (c *compiler) expandInstances(plan *Plan) {
	anyInstances := false
	for _, svc := range c.services {
		anyInstances = anyInstances || len(svc.Instances) > 0
	}
	if len(c.hostNames) == 0 && !anyInstances {
		return
	}
	var narrow map[string]bool
	if len(c.opts.Hosts) > 0 {
		narrow = map[string]bool{}
		for _, h := range c.opts.Hosts {
			narrow[h] = true
		}
	}
	usedHosts := map[string]bool{}
	byService := map[string][]*Service{}
	var out []*Service
	for _, svc := range plan.Services {
		idx := c.serviceIndex[svc.Name]
		hosts := c.hostsOf[idx]
		templ := c.instancesOf(idx)
		if len(hosts) == 0 && len(c.services[idx].Instances) == 0 {
			if narrow == nil {
				byService[svc.Name] = []*Service{svc}
				out = append(out, svc)
			}
			continue
		}
		if len(hosts) == 0 {
			if narrow != nil {
				continue
			}
			hosts = []*dsl.Host{nil}
		}
		// The first instance reuses svc, whose Name changes below: keep
		// what every instance shares first.
		base, needs := svc.Name, svc.Needs
		var insts []*Service
		for k, h := range hosts {
			if narrow != nil && !narrow[h.Name] {
				continue
			}
			hostName := ""
			if h != nil {
				hostName = h.Name
				usedHosts[h.Name] = true
			}
			for t, ti := range templ {
				inst := svc
				if k > 0 || t > 0 || svc.HostName() != hostName {
					inst = c.compileService(idx, h, ti)
					inst.Wave = svc.Wave
				}
				inst.Name = InstanceKey(base, ti.Name, hostName)
				inst.Service = base
				inst.Needs = needs
				insts = append(insts, inst)
			}
		}
		c.addBatches(plan, c.services[idx], insts)
		byService[base] = insts
		out = append(out, insts...)
	}
	if narrow != nil && len(out) == 0 {
		c.add(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No instance on the selected hosts",
			Detail:   fmt.Sprintf("No selected service runs on %s. Check the --host names, or the services' hosts.", quoteList(c.opts.Hosts)),
		})
		return
	}
	for _, inst := range out {
		var needs []string
		for _, n := range inst.Needs {
			for _, dep := range byService[n] {
				needs = append(needs, dep.Name)
			}
		}
		inst.Needs = needs
	}
	for _, name := range c.hostNames {
		if usedHosts[name] {
			plan.Hosts = append(plan.Hosts, plannerHost(c.hosts[name]))
		}
	}
	// Instances share one Host value per host, so that the executor and
	// the steps can key connections by pointer or by name alike.
	shared := map[string]*Host{}
	for _, h := range plan.Hosts {
		shared[h.Name] = h
	}
	for _, inst := range out {
		if inst.Host != nil {
			inst.Host = shared[inst.Host.Name]
		}
	}

	g := dag.New(len(out))
	for _, inst := range out {
		g.Add(inst.Name)
	}
	for _, inst := range out {
		for _, n := range inst.Needs {
			g.Connect(n, inst.Name)
		}
		for _, n := range inst.After {
			g.Connect(n, inst.Name)
		}
	}
	order, err := g.TopologicalOrder(nil)
	if err != nil {
		panic("planner: cycle in the validated instance graph")
	}
	waves, _ := g.Waves()
	byName := make(map[string]*Service, len(out))
	for _, inst := range out {
		byName[inst.Name] = inst
	}
	for w, wave := range waves {
		for _, name := range wave {
			byName[name].Wave = w
		}
	}
	plan.Order = order
	plan.Waves = waves
	plan.Services = plan.Services[:0]
	for _, name := range order {
		plan.Services = append(plan.Services, byName[name])
	}
}

// addBatches splits a service's instances into its serial batches, each
// batch after the previous one, and limits how many are down at once. A
// service with template instances and no max_unavailable restarts them
// one at a time: all at once would be the outage instances are there to
// avoid. A canary's instances come first, as a batch of their own, and
// the serial batches split the rest.
func (c *compiler) addBatches(plan *Plan, svc *dsl.Service, insts []*Service) {
	switch {
	case svc.MaxUnavailableSet && len(insts) > 0:
		plan.Batches = append(plan.Batches, Batch{
			Services:       []string{svc.Name},
			MaxUnavailable: svc.MaxUnavailable.Of(len(insts)),
		})
	case len(svc.Instances) > 0 && len(insts) > 1:
		plan.Batches = append(plan.Batches, Batch{
			Services:       []string{svc.Name},
			MaxUnavailable: 1,
		})
	}
	var prev []string
	if svc.Canary != nil && len(insts) > 1 {
		n := min(svc.Canary.Count.Of(len(insts)), len(insts)-1)
		cn := c.canary(svc, insts[:n], insts[n:])
		plan.Canaries = append(plan.Canaries, cn)
		prev = cn.Canaries
		insts = insts[n:]
	}
	batches := SerialBatches(svc.Serial, len(insts))
	start := 0
	for _, size := range batches {
		var cur []string
		for _, inst := range insts[start : start+size] {
			inst.After = slices.Clone(prev)
			cur = append(cur, inst.Name)
		}
		prev = cur
		start += size
	}
}

// SerialBatches sizes the batches of n instances as Ansible's serial does:
// each amount in turn (a percentage of n, at least 1), the last one
// repeated until all n are covered. No amounts: one batch of n.
func SerialBatches(serial []dsl.Amount, n int) []int {
	if n == 0 {
		return nil
	}
	if len(serial) == 0 {
		return []int{n}
	}
	var out []int
	left := n
	for i := 0; left > 0; i++ {
		a := serial[min(i, len(serial)-1)]
		size := min(max(a.Of(n), 1), left)
		out = append(out, size)
		left -= size
	}
	return out
}

package planner

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// RenderText writes the plan as a reviewer reads it in a pull request:
// a header with the policy, then each wave's services with their unit,
// pipeline, dependencies, health check and numbered steps with their
// resolved arguments and what undoes them, then the time estimate.
// The same plan always gives the same bytes.
func RenderText(w io.Writer, p *Plan) error {
	var b strings.Builder
	est := p.Estimate()
	fmt.Fprintf(&b, "Plan %q (%s)\n", p.Name, p.File)
	fmt.Fprintf(&b, "  %s in %s, max_parallel %s, on_failure %s",
		p.SizeText(), plural(len(p.Waves), "wave"), parallelText(p.MaxParallel), p.OnFailure)
	if p.MaxFailures > 0 {
		fmt.Fprintf(&b, ", max_failures %d", p.MaxFailures)
	}
	b.WriteString("\n")
	if p.EventsLog != "" {
		fmt.Fprintf(&b, "  events log %s\n", p.EventsLog)
	}
	for _, batch := range p.Batches {
		if len(batch.Services) > 0 {
			fmt.Fprintf(&b, "  batch: at most %d instances at once of %s\n", batch.MaxUnavailable, strings.Join(batch.Services, ", "))
			continue
		}
		fmt.Fprintf(&b, "  batch: at most %d at once of types [%s] tags [%s]\n",
			batch.MaxUnavailable, strings.Join(batch.Types, ", "), strings.Join(batch.Tags, ", "))
	}
	for _, n := range p.Notifications {
		writeNotificationText(&b, n)
	}
	for _, h := range p.Hosts {
		fmt.Fprintf(&b, "  host %s: %s", h.Name, h.Destination())
		if h.Port != 0 {
			fmt.Fprintf(&b, " port %d", h.Port)
		}
		if h.SystemdBus != "" {
			fmt.Fprintf(&b, ", systemd at %s", h.SystemdBus)
		}
		if len(h.Tags) > 0 {
			fmt.Fprintf(&b, ", tags %s", strings.Join(h.Tags, ", "))
		}
		b.WriteString("\n")
	}
	for _, c := range p.Canaries {
		writeCanaryText(&b, c)
	}
	byName := servicesByName(p)
	for i, wave := range p.Waves {
		fmt.Fprintf(&b, "\nWave %d\n", i+1)
		for _, name := range wave {
			svc := byName[name]
			if svc == nil {
				continue
			}
			writeServiceText(&b, p, svc, est.Services[name])
		}
	}
	b.WriteString("\n")
	if len(est.CriticalPath) > 0 {
		fmt.Fprintf(&b, "Critical path (estimated %s): %s\n", est.Critical, strings.Join(est.CriticalPath, " → "))
	}
	fmt.Fprintf(&b, "Sequential estimate: %s\n", est.Sequential)
	fmt.Fprintf(&b, "Order: %s\n", strings.Join(p.Order, ", "))
	_, err := io.WriteString(w, b.String())
	return err
}

func writeServiceText(b *strings.Builder, p *Plan, svc *Service, estimate Span) {
	fmt.Fprintf(b, "  %s\n", svc.Name)
	if svc.Host != nil {
		fmt.Fprintf(b, "    host:       %s (%s)\n", svc.Host.Name, svc.Host.Destination())
	}
	if svc.Instance != "" {
		fmt.Fprintf(b, "    instance:   %s", svc.Instance)
		if svc.Port != 0 {
			fmt.Fprintf(b, " (port %d)", svc.Port)
		}
		b.WriteString("\n")
	}
	if c := p.CanaryOf(svc.Name); c != nil {
		fmt.Fprintf(b, "    canary:     yes, observed %s before the rest of %s\n", c.Observe, c.Service)
	}
	fmt.Fprintf(b, "    unit:       %s\n", svc.Unit)
	if svc.Type != "" {
		fmt.Fprintf(b, "    type:       %s\n", svc.Type)
	}
	fmt.Fprintf(b, "    pipeline:   %s\n", svc.Pipeline)
	if len(svc.Tags) > 0 {
		fmt.Fprintf(b, "    tags:       %s\n", strings.Join(svc.Tags, ", "))
	}
	fmt.Fprintf(b, "    depends_on: %s\n", listOrDash(svc.DependsOn))
	if !sameSet(svc.DependsOn, svc.Needs) {
		fmt.Fprintf(b, "    waits for:  %s\n", listOrDash(svc.Needs))
	}
	if len(svc.After) > 0 {
		why := "the batch before"
		if p.promotes(svc.After[0], svc.Name) {
			why = "the canary, once promoted"
		}
		fmt.Fprintf(b, "    after:      %s (%s)\n", strings.Join(svc.After, ", "), why)
	}
	fmt.Fprintf(b, "    health:     %s\n", healthText(svc.Health))
	fmt.Fprintf(b, "    estimate:   %s\n", estimate)
	if len(svc.Steps) == 0 {
		b.WriteString("    steps:      none\n")
		return
	}
	b.WriteString("    steps:\n")
	for i, step := range svc.Steps {
		fmt.Fprintf(b, "      %d. %s (%s)", i+1, step.Name, step.Type)
		for _, name := range sortedKeys(step.Args) {
			v := step.Args[name]
			if v.IsNull() {
				continue
			}
			fmt.Fprintf(b, " %s=%s", name, valueText(v))
		}
		if step.Rollback != "" {
			fmt.Fprintf(b, " — undo: %s", step.Rollback)
		}
		b.WriteString("\n")
		for _, line := range step.Detail {
			fmt.Fprintf(b, "         %s\n", line)
		}
	}
}

func writeCanaryText(b *strings.Builder, c *Canary) {
	promote := "promoted automatically"
	if !c.AutoPromote {
		promote = fmt.Sprintf("promoted by a person (rollout promote RUN_ID) within %s", c.PromoteTimeout)
	}
	tolerated := ""
	if c.FailureLimit > 0 {
		tolerated = fmt.Sprintf(" (%s of checks may fail)", plural(c.FailureLimit, "round"))
	}
	fmt.Fprintf(b, "  canary %s: %s first, observed %s every %s%s, %s, then %s\n",
		c.Service, strings.Join(c.Canaries, ", "), c.Observe, c.Interval, tolerated, promote, strings.Join(c.Rest, ", "))
	for _, ch := range c.Checks {
		fmt.Fprintf(b, "    check: %s\n", ch.Describe())
	}
}

// CanaryOf returns the canary phase name is a canary instance of, or nil.
func (p *Plan) CanaryOf(name string) *Canary {
	for _, c := range p.Canaries {
		if slices.Contains(c.Canaries, name) {
			return c
		}
	}
	return nil
}

// promotes reports whether the edge prev → next is a canary's promotion:
// next is one of the instances that wait for it.
func (p *Plan) promotes(prev, next string) bool {
	c := p.CanaryOf(prev)
	return c != nil && slices.Contains(c.Rest, next)
}

func writeNotificationText(b *strings.Builder, n Notification) {
	fmt.Fprintf(b, "  notify %s %q: %s, events %s", n.Kind, n.Name, n.Target(), strings.Join(n.Events, ", "))
	if len(n.HeadersFromEnv) > 0 {
		var hs []string
		for _, h := range sortedKeys(n.HeadersFromEnv) {
			hs = append(hs, h+" from $"+n.HeadersFromEnv[h])
		}
		fmt.Fprintf(b, ", headers %s", strings.Join(hs, ", "))
	}
	fmt.Fprintf(b, ", timeout %s, retries %d\n", n.Timeout, n.Retries)
}

func healthText(h *Health) string {
	if h == nil {
		return "none"
	}
	var target string
	switch {
	case h.URL != "":
		target = " " + h.URL
		if h.ExpectStatus != 0 {
			target += fmt.Sprintf(" (status %d)", h.ExpectStatus)
		}
	case h.Address != "":
		target = " " + h.Address
	case len(h.Command) > 0:
		target = " " + valueText(stringList(h.Command))
	}
	return fmt.Sprintf("%s%s, timeout %s, retries %d, interval %s", h.Kind, target, h.Timeout, h.Retries, h.Interval)
}

func stringList(ss []string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vals := make([]cty.Value, len(ss))
	for i, s := range ss {
		vals[i] = cty.StringVal(s)
	}
	return cty.ListVal(vals)
}

func parallelText(n int) string {
	if n <= 0 {
		return "unbounded"
	}
	return fmt.Sprint(n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func listOrDash(ss []string) string {
	if len(ss) == 0 {
		return "—"
	}
	return strings.Join(ss, ", ")
}

func servicesByName(p *Plan) map[string]*Service {
	m := make(map[string]*Service, len(p.Services))
	for _, s := range p.Services {
		m[s.Name] = s
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// valueText renders a cty value compactly in HCL syntax: strings quoted,
// lists in brackets, maps and objects in braces with sorted keys.
func valueText(v cty.Value) string {
	var b strings.Builder
	writeValueText(&b, v)
	return b.String()
}

func writeValueText(b *strings.Builder, v cty.Value) {
	switch {
	case v == cty.NilVal || v.IsNull():
		b.WriteString("null")
		return
	case !v.IsKnown():
		b.WriteString("(unknown)")
		return
	}
	v, _ = v.Unmark()
	t := v.Type()
	switch {
	case t == cty.String:
		fmt.Fprintf(b, "%q", v.AsString())
	case t == cty.Number:
		b.WriteString(v.AsBigFloat().Text('f', -1))
	case t == cty.Bool:
		fmt.Fprint(b, v.True())
	case t.IsListType() || t.IsSetType() || t.IsTupleType():
		b.WriteString("[")
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			_, e := it.Element()
			writeValueText(b, e)
		}
		b.WriteString("]")
	case t.IsMapType() || t.IsObjectType():
		b.WriteString("{")
		var keys []string
		vals := map[string]cty.Value{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if t.IsObjectType() && e.IsNull() {
				// An optional attribute left out: printing "= null" for
				// each would bury the ones that are set.
				continue
			}
			keys = append(keys, k.AsString())
			vals[k.AsString()] = e
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "%s = ", k)
			writeValueText(b, vals[k])
		}
		b.WriteString("}")
	default:
		b.WriteString(t.FriendlyName())
	}
}

// sameSet reports whether a and b hold the same names, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

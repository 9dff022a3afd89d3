package planner

import (
	"fmt"
	"io"
	"strings"
)

// criticalEdges returns the dependency → dependent edges on the plan's
// critical path, keyed "from\x00to".
func criticalEdges(path []string) (edges map[string]bool, nodes map[string]bool) {
	edges, nodes = map[string]bool{}, map[string]bool{}
	for i, name := range path {
		nodes[name] = true
		if i > 0 {
			edges[path[i-1]+"\x00"+name] = true
		}
	}
	return edges, nodes
}

// criticalCaption says how long the critical path is estimated to take,
// for a reviewer: its services run one after another however parallel the
// run, so the run takes at least as long as they do.
func criticalCaption(p *Plan, est Estimate) string {
	if len(est.CriticalPath) == 0 {
		return fmt.Sprintf("plan %s", p.Name)
	}
	return fmt.Sprintf("plan %s: critical path (red) estimated %s; %s in %s", p.Name, est.Critical,
		p.SizeText(), plural(len(p.Waves), "wave"))
}

// RenderDOT writes the plan as a Graphviz digraph: one cluster per wave,
// edges from dependency to dependent, the critical path bold and red, its
// estimated time in the graph's label.
func RenderDOT(w io.Writer, p *Plan) error {
	var b strings.Builder
	est := p.Estimate()
	crit, critNodes := criticalEdges(est.CriticalPath)
	byName := servicesByName(p)
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(p.Name))
	fmt.Fprintf(&b, "  label=%s;\n  labelloc=t;\n", dotQuote(criticalCaption(p, est)))
	b.WriteString("  rankdir=LR;\n")
	b.WriteString("  node [shape=box, fontname=\"Helvetica\"];\n")
	for i, wave := range p.Waves {
		fmt.Fprintf(&b, "  subgraph \"cluster_wave_%d\" {\n", i+1)
		fmt.Fprintf(&b, "    label=\"wave %d\";\n", i+1)
		b.WriteString("    style=dashed;\n")
		for _, name := range wave {
			unit := ""
			if svc := byName[name]; svc != nil {
				unit = svc.Unit
			}
			if p.CanaryOf(name) != nil {
				unit += "\ncanary"
			}
			attrs := fmt.Sprintf("label=%s", dotQuote(name+"\n"+unit+strategyLine(byName[name], "\n")))
			if critNodes[name] {
				attrs += ", color=red, penwidth=2"
			}
			fmt.Fprintf(&b, "    %s [%s];\n", dotQuote(name), attrs)
		}
		b.WriteString("  }\n")
	}
	for _, svc := range p.Services {
		for _, need := range svc.Needs {
			attrs := ""
			if crit[need+"\x00"+svc.Name] {
				attrs = " [color=red, style=bold, penwidth=2]"
			}
			fmt.Fprintf(&b, "  %s -> %s%s;\n", dotQuote(need), dotQuote(svc.Name), attrs)
		}
		// A serial batch waits for the one before it, failed or not.
		for _, prev := range svc.After {
			label := "batch"
			if p.promotes(prev, svc.Name) {
				label = "promote"
			}
			fmt.Fprintf(&b, "  %s -> %s [style=dashed, label=%s];\n", dotQuote(prev), dotQuote(svc.Name), dotQuote(label))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote makes a DOT double-quoted string; a newline becomes DOT's \n.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// RenderMermaid writes the plan as a Mermaid flowchart that GitHub renders
// in a pull request comment. Service names hold dots, which Mermaid ids may
// not, so nodes are s0, s1, … in plan order with the name in a quoted
// label; each wave is a subgraph; the critical path is drawn red and its
// estimated time is the chart's title.
func RenderMermaid(w io.Writer, p *Plan) error {
	var b strings.Builder
	est := p.Estimate()
	crit, critNodes := criticalEdges(est.CriticalPath)
	id := make(map[string]string, len(p.Services))
	for i, svc := range p.Services {
		id[svc.Name] = fmt.Sprintf("s%d", i)
	}
	byName := servicesByName(p)
	// The title goes in front matter, which GitHub renders above the chart.
	fmt.Fprintf(&b, "---\ntitle: %q\n---\n", criticalCaption(p, est))
	b.WriteString("flowchart LR\n")
	for i, wave := range p.Waves {
		fmt.Fprintf(&b, "  subgraph wave%d[\"wave %d\"]\n", i+1, i+1)
		for _, name := range wave {
			svc := byName[name]
			if svc == nil {
				continue
			}
			unit := mermaidText(svc.Unit)
			if p.CanaryOf(name) != nil {
				unit += "<br/>canary"
			}
			fmt.Fprintf(&b, "    %s[\"%s<br/>%s%s\"]\n", id[name], mermaidText(name), unit, strings.ReplaceAll(mermaidText(strategyLine(svc, "\n")), "\n", "<br/>"))
		}
		b.WriteString("  end\n")
	}
	var critLinks []string
	link := 0
	for _, svc := range p.Services {
		for _, need := range svc.Needs {
			fmt.Fprintf(&b, "  %s --> %s\n", id[need], id[svc.Name])
			if crit[need+"\x00"+svc.Name] {
				critLinks = append(critLinks, fmt.Sprint(link))
			}
			link++
		}
		for _, prev := range svc.After {
			label := "batch"
			if p.promotes(prev, svc.Name) {
				label = "promote"
			}
			fmt.Fprintf(&b, "  %s -. %s .-> %s\n", id[prev], label, id[svc.Name])
			link++
		}
	}
	if len(critNodes) > 0 {
		b.WriteString("  classDef critical stroke:#d00,stroke-width:3px\n")
		var ids []string
		for _, svc := range p.Services {
			if critNodes[svc.Name] {
				ids = append(ids, id[svc.Name])
			}
		}
		fmt.Fprintf(&b, "  class %s critical\n", strings.Join(ids, ","))
	}
	if len(critLinks) > 0 {
		fmt.Fprintf(&b, "  linkStyle %s stroke:#d00,stroke-width:3px\n", strings.Join(critLinks, ","))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidText escapes text for a quoted Mermaid label: quotes and the
// characters Mermaid reads as markup become HTML entities.
func mermaidText(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "#", "#35;")
	return r.Replace(s)
}

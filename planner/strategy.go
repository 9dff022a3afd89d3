package planner

import "strings"

// strategyLine is the summaries of a service's strategy steps (a
// blue-green switch), each after sep, for the graphs' node labels; ""
// for a service without one.
func strategyLine(svc *Service, sep string) string {
	if svc == nil {
		return ""
	}
	var b strings.Builder
	for _, st := range svc.Steps {
		if st != nil && st.Summary != "" {
			b.WriteString(sep)
			b.WriteString(st.Summary)
		}
	}
	return b.String()
}

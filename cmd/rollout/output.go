package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// formatArgs renders a step's resolved arguments in HCL syntax, sorted by
// name, leaving out unset ones: ` from = "/tmp/x" to = "/srv/x"`.
func formatArgs(args map[string]cty.Value) string {
	names := make([]string, 0, len(args))
	for name, v := range args {
		if v.IsNull() {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, name := range names {
		fmt.Fprintf(&sb, " %s = %s", name, strings.TrimSpace(string(hclwrite.TokensForValue(args[name]).Bytes())))
	}
	return sb.String()
}

package dsl

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// sizeUnits are the units a size may carry. Binary (KiB) and decimal (KB)
// units mean what they say; a bare number is bytes.
var sizeUnits = []struct {
	suffix string
	bytes  float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseSize parses a size such as "1GiB", "500MB", "512M" or "0" into
// bytes. Units are case-sensitive in the way `df -h` prints them; K, M,
// G and T alone are binary, as in df.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("it is empty")
	}
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.bytes
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, errors.New("expected a number followed by a unit: B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)")
	}
	if n < 0 {
		return 0, errors.New("it is negative")
	}
	b := n * mult
	if b > math.MaxInt64/2 {
		return 0, errors.New("it is too large")
	}
	return int64(b), nil
}

// FormatSize prints bytes the way ParseSize reads them, in the largest
// binary unit that keeps one decimal ("1.5GiB", "200MiB", "512B").
func FormatSize(b int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(b)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", b)
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + units[i]
}

// attrSize decodes a size string such as "1GiB".
func attrSize(attr *hcl.Attribute, ctx *hcl.EvalContext) (int64, bool, hcl.Diagnostics) {
	s, ok, diags := attrString(attr, ctx)
	if !ok {
		return 0, false, diags
	}
	n, err := ParseSize(s)
	if err != nil {
		return 0, false, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid size",
			Detail: fmt.Sprintf("The %q argument is %q, which is not a valid size (%s). "+
				"Use a number with a unit, such as \"1GiB\", \"500MiB\" or \"0\" to turn the check off.", attr.Name, shorten(s, 40), err),
			Subject: attr.Expr.Range().Ptr(),
		})
	}
	return n, true, diags
}

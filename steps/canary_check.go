package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// maxAnalysisBody bounds what an HTTP analysis reads of a response: a
// metrics document, not a download.
const maxAnalysisBody = 1 << 20

// NewCheckBuilder returns the executor.CheckBuilder for canary checks:
// the instance's own health check (one probe, no retries: a canary that
// is unhealthy once while it is observed has failed), an HTTP analysis
// (from the controller), and an exec analysis (on the instance's host).
func NewCheckBuilder(d Deps) executor.CheckBuilder {
	b := &builder{sd: d.Systemd, hosts: d.Hosts}
	return b.buildCheck
}

func (b *builder) buildCheck(inst *planner.Service, c *planner.Check) (executor.Check, error) {
	if c == nil {
		return nil, errors.New("no check")
	}
	switch c.Kind {
	case planner.CheckHealth:
		bb, err := b.forService(inst)
		if err != nil {
			return nil, err
		}
		h := serviceHealth(inst)
		probe, _, err := prober(&h, inst.Unit, bb.sd)
		if err != nil {
			return nil, err
		}
		return checkFunc(probe), nil
	case planner.CheckHTTP:
		if c.URL == "" {
			return nil, errors.New("http analysis without a url")
		}
		client := &http.Client{
			Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		var path []string
		if c.JSONPath != "" {
			var err error
			if path, err = dsl.ParseJSONPath(c.JSONPath); err != nil {
				return nil, fmt.Errorf("json_path %q: %w", c.JSONPath, err)
			}
		}
		cc := *c
		return checkFunc(func(ctx context.Context) error { return analyzeHTTP(ctx, client, &cc, path) }), nil
	case planner.CheckExec:
		if len(c.Command) == 0 || c.Command[0] == "" {
			return nil, errors.New("exec analysis without a command")
		}
		bb, err := b.forService(inst)
		if err != nil {
			return nil, err
		}
		argv := append([]string(nil), c.Command...)
		host := bb.host
		return checkFunc(func(ctx context.Context) error { return probeExec(ctx, host, argv) }), nil
	}
	return nil, fmt.Errorf("unknown check kind %q", c.Kind)
}

type checkFunc func(ctx context.Context) error

func (f checkFunc) Check(ctx context.Context) error { return f(ctx) }

// analyzeHTTP GETs the url: the status must be the expected one (any 2xx
// when none), and with a JSON path the number there must be within the
// bounds.
func analyzeHTTP(ctx context.Context, client *http.Client, c *planner.Check, path []string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", c.URL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: no response within %s", c.URL, c.Timeout)
		}
		return fmt.Errorf("GET %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnalysisBody))
	if err != nil {
		return fmt.Errorf("GET %s: reading the body: %w", c.URL, err)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	want := "a 2xx status"
	if c.ExpectStatus != 0 {
		ok = resp.StatusCode == c.ExpectStatus
		want = fmt.Sprintf("status %d", c.ExpectStatus)
	}
	if !ok {
		return fmt.Errorf("GET %s: %s, want %s; body %q", c.URL, resp.Status, want, clip(strings.TrimSpace(string(body)), 200))
	}
	if len(path) == 0 {
		return nil
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("GET %s: the body is not JSON: %v", c.URL, err)
	}
	n, err := jsonNumber(doc, path)
	if err != nil {
		return fmt.Errorf("GET %s: %s: %w", c.URL, c.JSONPath, err)
	}
	if c.Max != nil && n > *c.Max {
		return fmt.Errorf("GET %s: %s is %g, above the maximum %g", c.URL, c.JSONPath, n, *c.Max)
	}
	if c.Min != nil && n < *c.Min {
		return fmt.Errorf("GET %s: %s is %g, below the minimum %g", c.URL, c.JSONPath, n, *c.Min)
	}
	return nil
}

// jsonNumber follows path in doc: object keys, and array indexes given as
// digits. The value there must be a number (or a string holding one, as
// some exporters write them).
func jsonNumber(doc any, path []string) (float64, error) {
	cur := doc
	for k, key := range path {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[key]
			if !ok {
				return 0, fmt.Errorf("no key %q", strings.Join(path[:k+1], "."))
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(v) {
				return 0, fmt.Errorf("no element %q (the array has %d)", strings.Join(path[:k+1], "."), len(v))
			}
			cur = v[i]
		default:
			return 0, fmt.Errorf("%q is not an object or an array", strings.Join(path[:k], "."))
		}
	}
	switch v := cur.(type) {
	case float64:
		return v, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err == nil && !math.IsNaN(f) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("the value %v is not a number", cur)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

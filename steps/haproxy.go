package steps

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// HAProxy's runtime API, shared by haproxy_drain and haproxy_ready: the
// admin socket of HAProxy's global section
//
//	stats socket /run/haproxy/admin.sock mode 660 level admin
//	stats socket ipv4@127.0.0.1:9999 level admin
//
// answers one command per connection and closes it (non-interactive mode).

// defaultHAProxyTimeout bounds the wait for a drained server's sessions
// to end, and for a readied server to be up.
const defaultHAProxyTimeout = 30 * time.Second

// haproxyIOTimeout bounds one command on the socket: HAProxy answers at
// once, so a socket that does not is a stuck or wrong one.
const haproxyIOTimeout = 5 * time.Second

// haproxyPoll is how often a wait reads the server's state; `show stat`
// costs HAProxy a few microseconds.
const haproxyPoll = 50 * time.Millisecond

// haproxySpec is the arguments both HAProxy steps take, and extra.
func haproxySpec(extra hcldec.ObjectSpec) hcldec.ObjectSpec {
	spec := hcldec.ObjectSpec{
		"socket":  &hcldec.AttrSpec{Name: "socket", Type: cty.String, Required: true},
		"backend": &hcldec.AttrSpec{Name: "backend", Type: cty.String, Required: true},
		"server":  &hcldec.AttrSpec{Name: "server", Type: cty.String, Required: true},
		"timeout": &hcldec.AttrSpec{Name: "timeout", Type: cty.String},
	}
	for k, v := range extra {
		spec[k] = v
	}
	return spec
}

func validateHAProxy(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if s, ok := knownString(args, "socket"); ok {
		if _, _, err := haproxyNetwork(s); err != nil {
			diags = append(diags, invalidArg(rng("socket"), "Invalid HAProxy socket",
				fmt.Sprintf("The socket argument must be the path of HAProxy's admin socket (such as \"/run/haproxy/admin.sock\") or its TCP address (such as \"127.0.0.1:9999\"), but %s. Give the address of a `stats socket ... level admin` line of HAProxy's global section.", err)))
		}
	}
	for _, name := range []string{"backend", "server"} {
		s, ok := knownString(args, name)
		if !ok {
			continue
		}
		if s == "" || strings.ContainsAny(s, "/ \t\r\n") {
			diags = append(diags, invalidArg(rng(name), "Invalid HAProxy "+name+" name",
				fmt.Sprintf("The %s argument must be the name of a %s as HAProxy's configuration spells it, without spaces or slashes, but it is %q.", name, name, s)))
		}
	}
	return diags
}

// haproxyNetwork splits an admin socket address into a dial network and
// address: an absolute path (or unix@/unix: prefix) is a unix socket,
// host:port (or ipv4@host:port) is TCP.
func haproxyNetwork(addr string) (network, address string, err error) {
	for _, p := range []string{"unix@", "unix:"} {
		if rest, ok := strings.CutPrefix(addr, p); ok {
			addr = rest
			if !strings.HasPrefix(addr, "/") {
				return "", "", fmt.Errorf("%q is not an absolute path", addr)
			}
		}
	}
	if strings.HasPrefix(addr, "/") {
		return "unix", addr, nil
	}
	for _, p := range []string{"ipv4@", "ipv6@", "tcp:", "tcp@"} {
		addr = strings.TrimPrefix(addr, p)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", "", fmt.Errorf("%q is neither an absolute path nor host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("%q has no valid port", addr)
	}
	return "tcp", addr, nil
}

// haproxyAPI is a client of one HAProxy's runtime API.
type haproxyAPI struct{ addr string }

// command sends one command and returns HAProxy's answer.
func (h haproxyAPI) command(ctx context.Context, cmd string) (string, error) {
	network, address, err := haproxyNetwork(h.addr)
	if err != nil {
		return "", fmt.Errorf("HAProxy socket: %w", err)
	}
	d := net.Dialer{Timeout: haproxyIOTimeout}
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return "", fmt.Errorf("HAProxy runtime API at %s: %w", h.addr, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(haproxyIOTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("HAProxy runtime API at %s: %q: %w", h.addr, cmd, err)
	}
	// `show stat` of a big configuration is a few hundred kilobytes.
	out, err := io.ReadAll(io.LimitReader(conn, 16<<20))
	if err != nil {
		return "", fmt.Errorf("HAProxy runtime API at %s: %q: %w", h.addr, cmd, err)
	}
	return string(out), nil
}

// setState sets a server's administrative state (ready, drain, maint).
// HAProxy answers nothing when it did it, and a sentence when it did not
// ("No such server.", "Permission denied").
func (h haproxyAPI) setState(ctx context.Context, backend, server, state string) error {
	out, err := h.command(ctx, fmt.Sprintf("set server %s/%s state %s", backend, server, state))
	if err != nil {
		return err
	}
	if msg := strings.TrimSpace(out); msg != "" {
		if strings.Contains(msg, "ermission") {
			msg += " (the socket needs `level admin` in HAProxy's stats socket line)"
		}
		return fmt.Errorf("HAProxy refused to set %s/%s to %s: %s", backend, server, state, msg)
	}
	return nil
}

// haproxyServer is a server's row of `show stat`.
type haproxyServer struct {
	Backend, Name string
	// Status is HAProxy's: UP, DOWN, DRAIN, MAINT, NOLB, "no check", and
	// the transitions "UP 1/3" (going down) and "DOWN 1/2" (coming up).
	Status string
	// Sessions is scur (streams using the server now), Queued qcur
	// (requests waiting for it).
	Sessions, Queued int
}

// inTraffic says whether HAProxy sends new requests to the server.
func (s haproxyServer) inTraffic() bool {
	return s.Status == "UP" || strings.HasPrefix(s.Status, "UP ") || s.Status == "no check"
}

// heldOut says whether someone took the server out of traffic on
// purpose (an administrative state), as opposed to failing checks.
func (s haproxyServer) heldOut() bool {
	return strings.HasPrefix(s.Status, "MAINT") || strings.HasPrefix(s.Status, "DRAIN")
}

// servers returns the servers of backend, in HAProxy's order.
func (h haproxyAPI) servers(ctx context.Context, backend string) ([]haproxyServer, error) {
	out, err := h.command(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	rows, err := parseShowStat(out)
	if err != nil {
		return nil, fmt.Errorf("HAProxy runtime API at %s: show stat: %w", h.addr, err)
	}
	var list []haproxyServer
	found := false
	for _, r := range rows {
		if r.Backend != backend {
			continue
		}
		found = true
		if r.Name != "FRONTEND" && r.Name != "BACKEND" {
			list = append(list, r)
		}
	}
	if !found {
		return nil, fmt.Errorf("HAProxy at %s has no backend %q", h.addr, backend)
	}
	return list, nil
}

// server returns one server's row, and the backend's other servers.
func (h haproxyAPI) server(ctx context.Context, backend, name string) (haproxyServer, []haproxyServer, error) {
	list, err := h.servers(ctx, backend)
	if err != nil {
		return haproxyServer{}, nil, err
	}
	var others []string
	var rest []haproxyServer
	var me *haproxyServer
	for i := range list {
		if list[i].Name == name {
			me = &list[i]
		} else {
			others = append(others, list[i].Name)
			rest = append(rest, list[i])
		}
	}
	if me == nil {
		return haproxyServer{}, nil, fmt.Errorf("HAProxy backend %q has no server %q (its servers: %s)", backend, name, strings.Join(others, ", "))
	}
	return *me, rest, nil
}

// parseShowStat reads `show stat`'s CSV: a "# pxname,svname,..." header,
// then a row per frontend, backend and server.
func parseShowStat(out string) ([]haproxyServer, error) {
	out = strings.TrimLeft(out, " \n")
	header, _, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(header, "# ") {
		msg := strings.TrimSpace(header)
		if msg == "" {
			msg = "empty answer"
		}
		return nil, fmt.Errorf("not a stats table: %s", msg)
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	for _, need := range []string{"pxname", "svname", "status", "scur", "qcur"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("no %s column", need)
		}
	}
	field := func(rec []string, name string) string {
		if i := col[name]; i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var rows []haproxyServer
	for _, rec := range recs[1:] {
		if len(rec) == 0 || (len(rec) == 1 && rec[0] == "") {
			continue
		}
		scur, _ := strconv.Atoi(field(rec, "scur"))
		qcur, _ := strconv.Atoi(field(rec, "qcur"))
		rows = append(rows, haproxyServer{
			Backend:  field(rec, "pxname"),
			Name:     field(rec, "svname"),
			Status:   field(rec, "status"),
			Sessions: scur,
			Queued:   qcur,
		})
	}
	return rows, nil
}

// haproxyTarget is one server behind one HAProxy, as a step names it.
type haproxyTarget struct {
	api             haproxyAPI
	backend, server string
	timeout         time.Duration
}

func (b *builder) haproxyTarget(r *argReader) haproxyTarget {
	t := haproxyTarget{timeout: defaultHAProxyTimeout}
	t.api.addr, _ = r.str("socket")
	t.backend, _ = r.str("backend")
	t.server, _ = r.str("server")
	if d, ok := r.duration("timeout"); ok {
		t.timeout = d
	}
	return t
}

func (t haproxyTarget) String() string { return t.backend + "/" + t.server }

// drain sets the server to drain and waits, bounded by timeout, until no
// session uses it and no request waits for it.
func (t haproxyTarget) drain(ctx context.Context, env *executor.Env) error {
	if err := t.api.setState(ctx, t.backend, t.server, "drain"); err != nil {
		return err
	}
	return t.waitDrained(ctx, env)
}

func (t haproxyTarget) waitDrained(ctx context.Context, env *executor.Env) error {
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	last := -1
	for {
		s, _, err := t.api.server(wctx, t.backend, t.server)
		if err == nil {
			if s.Sessions == 0 && s.Queued == 0 {
				logf(env, "%s drained in %s", t, time.Since(began).Round(time.Millisecond))
				return nil
			}
			if n := s.Sessions + s.Queued; n != last {
				logf(env, "%s: waiting for %d sessions and %d queued requests to end", t, s.Sessions, s.Queued)
				last = n
			}
		}
		if err := sleepCtx(wctx, haproxyPoll); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if last >= 0 {
				return fmt.Errorf("%s still had sessions after %s: stopping it now would cut them (raise timeout, or find the long-lived connections)", t, t.timeout)
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", t, err)
			}
			return fmt.Errorf("%s: no answer from HAProxy within %s", t, t.timeout)
		}
	}
}

// ready sets the server to ready and waits, bounded by timeout, until
// HAProxy sends it traffic: after a restart its health checks must see it
// up first, and the next instance must not be drained before that.
func (t haproxyTarget) ready(ctx context.Context, env *executor.Env) error {
	if err := t.api.setState(ctx, t.backend, t.server, "ready"); err != nil {
		return err
	}
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	status := ""
	for {
		s, _, err := t.api.server(wctx, t.backend, t.server)
		if err == nil {
			if s.inTraffic() {
				logf(env, "%s is %s, in traffic after %s", t, s.Status, time.Since(began).Round(time.Millisecond))
				return nil
			}
			if s.Status != status {
				logf(env, "%s is %s; waiting for HAProxy's checks to see it up", t, s.Status)
				status = s.Status
			}
		}
		if err := sleepCtx(wctx, haproxyPoll); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if status != "" {
				return fmt.Errorf("%s is still %s after %s: HAProxy does not see it up (check its health check and address)", t, status, t.timeout)
			}
			return fmt.Errorf("%s: no answer from HAProxy within %s", t, t.timeout)
		}
	}
}

// haproxyReadmit is the undo of a drain: the server back to ready once the
// service is back (the executor runs Readmitters after every Reopen).
type haproxyReadmit struct{ haproxyTarget }

func (u *haproxyReadmit) Readmit() {}

func (u *haproxyReadmit) Describe() string {
	return fmt.Sprintf("set HAProxy server %s to ready (socket %s), wait until it is up", u.haproxyTarget, u.api.addr)
}

func (u *haproxyReadmit) Undo(ctx context.Context, env *executor.Env) error {
	return u.ready(ctx, env)
}

// haproxyRedrain is the undo of haproxy_ready: out of traffic again, before
// the rollback stops the unit.
type haproxyRedrain struct{ haproxyTarget }

func (u *haproxyRedrain) Describe() string {
	return fmt.Sprintf("set HAProxy server %s to drain (socket %s), wait for its sessions to end", u.haproxyTarget, u.api.addr)
}

func (u *haproxyRedrain) Undo(ctx context.Context, env *executor.Env) error {
	return u.drain(ctx, env)
}

var _ executor.Readmitter = (*haproxyReadmit)(nil)

// haproxyTraffic is the planner's view of both HAProxy steps: drain takes
// the server out, ready puts it back.
func haproxyTraffic(out bool) func(args map[string]cty.Value) (planner.TrafficMark, bool) {
	return func(args map[string]cty.Value) (planner.TrafficMark, bool) {
		socket, ok1 := knownString(args, "socket")
		backend, ok2 := knownString(args, "backend")
		server, ok3 := knownString(args, "server")
		if !ok1 || !ok2 || !ok3 {
			return planner.TrafficMark{}, false
		}
		return planner.TrafficMark{
			Key:  fmt.Sprintf("haproxy %s %s/%s", socket, backend, server),
			Out:  out,
			Hint: fmt.Sprintf("Add a haproxy_ready step with the same socket, backend and server (%s/%s) after the health check that verifies the restart.", backend, server),
		}, true
	}
}

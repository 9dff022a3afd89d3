package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rollout-sh/rollout/executor"
)

// bgSwitcher is the load balancer of a blue-green service: it says which
// color is live, reading the balancer's own state on the host (never a
// file rollout keeps), and moves traffic from one color to the other.
type bgSwitcher interface {
	// live returns the index of the live color in colors and what showed
	// it; exactly one color must be in traffic.
	live(ctx context.Context, colors [2]bgColor) (int, string, error)
	// switchTo puts to in traffic and from out, and returns once no new
	// request reaches from and the ones it had have ended.
	switchTo(ctx context.Context, env *executor.Env, to, from bgColor) error
	record() bgRecord
	String() string
}

// bgRecord is a switcher as data, for the run journal.
type bgRecord struct {
	Kind string `json:"kind"` // "nginx" or "haproxy"
	// nginx
	File     string `json:"file,omitempty"`
	Upstream string `json:"upstream,omitempty"`
	Nginx    string `json:"nginx,omitempty"`
	Conf     string `json:"conf,omitempty"`
	PidFile  string `json:"pid_file,omitempty"`
	// haproxy
	Socket  string `json:"socket,omitempty"`
	Backend string `json:"backend,omitempty"`

	Timeout string `json:"timeout"`
}

func (r bgRecord) switcher() (bgSwitcher, error) {
	timeout, err := time.ParseDuration(r.Timeout)
	if err != nil || timeout <= 0 {
		timeout = defaultNginxTimeout
	}
	switch r.Kind {
	case "nginx":
		if r.File == "" {
			return nil, fmt.Errorf("blue-green record: nginx without a file")
		}
		t := nginxTarget{file: r.File, upstream: r.Upstream, nginx: r.Nginx, conf: r.Conf, pidFile: r.PidFile, timeout: timeout}
		if t.nginx == "" {
			t.nginx = "nginx"
		}
		if t.pidFile == "" {
			t.pidFile = defaultNginxPidFile
		}
		return &bgNginx{t: t}, nil
	case "haproxy":
		if r.Socket == "" || r.Backend == "" {
			return nil, fmt.Errorf("blue-green record: haproxy without a socket or backend")
		}
		return &bgHAProxy{api: haproxyAPI{addr: r.Socket}, backend: r.Backend, timeout: timeout}, nil
	}
	return nil, fmt.Errorf("blue-green record: unknown load balancer %q", r.Kind)
}

// bgNginx switches with an nginx upstream file that lists both colors'
// servers, the idle one marked down: one atomic rewrite swaps the marks,
// `nginx -t`, a graceful reload, and a wait for the old workers (which
// finish the requests they hold on the old color).
type bgNginx struct{ t nginxTarget }

func (n *bgNginx) String() string {
	if n.t.upstream != "" {
		return fmt.Sprintf("nginx upstream %s in %s", n.t.upstream, n.t.file)
	}
	return "nginx upstream file " + n.t.file
}

func (n *bgNginx) record() bgRecord {
	return bgRecord{Kind: "nginx", File: n.t.file, Upstream: n.t.upstream, Nginx: n.t.nginx, Conf: n.t.conf, PidFile: n.t.pidFile, Timeout: n.t.timeout.String()}
}

func (n *bgNginx) read(colors [2]bgColor) (conf *nginxConf, text string, lines [2][]int, err error) {
	text, _, err = readUpstreamFile(n.t.file)
	if err != nil {
		return nil, "", lines, err
	}
	conf, err = parseNginxUpstreams(text)
	if err != nil {
		return nil, "", lines, fmt.Errorf("%s: %w", n.t.file, err)
	}
	for i, c := range colors {
		lines[i] = conf.find(n.t.upstream, c.Address)
		if len(lines[i]) == 0 {
			return nil, "", lines, fmt.Errorf("%s has no server %s for color %s (its upstreams: %s); list both colors' servers in it, the idle one `down`", n, c.Address, c.Name, conf.describe())
		}
	}
	return conf, text, lines, nil
}

func (n *bgNginx) live(ctx context.Context, colors [2]bgColor) (int, string, error) {
	lock := fileLock(n.t.file)
	lock.Lock()
	defer lock.Unlock()
	conf, _, lines, err := n.read(colors)
	if err != nil {
		return 0, "", err
	}
	var up []int
	var desc []string
	for i, c := range colors {
		down := 0
		for _, k := range lines[i] {
			if conf.servers[k].isDown() {
				down++
			}
		}
		switch {
		case down == 0:
			up = append(up, i)
			desc = append(desc, fmt.Sprintf("%s %s up", c.Name, c.Address))
		case down == len(lines[i]):
			desc = append(desc, fmt.Sprintf("%s %s down", c.Name, c.Address))
		default:
			return 0, "", fmt.Errorf("%s: color %s (%s) is down in %d of its %d server lines; mark it the same in each before a switch", n, c.Name, c.Address, down, len(lines[i]))
		}
	}
	evidence := n.String() + ": " + strings.Join(desc, ", ")
	switch len(up) {
	case 1:
		return up[0], evidence, nil
	case 2:
		return 0, "", fmt.Errorf("both colors are in traffic (%s), so neither is idle to take the release; mark the one to replace `down` (and reload nginx) first", evidence)
	}
	return 0, "", fmt.Errorf("no color is in traffic (%s): there is no live color to keep serving during the switch; put one in traffic first", evidence)
}

func (n *bgNginx) switchTo(ctx context.Context, env *executor.Env, to, from bgColor) error {
	lock := fileLock(n.t.file)
	lock.Lock()
	defer lock.Unlock()
	_, mode, err := readUpstreamFile(n.t.file)
	if err != nil {
		return err
	}
	conf, text, lines, err := n.read([2]bgColor{to, from})
	if err != nil {
		return err
	}
	all := append(append([]int{}, lines[0]...), lines[1]...)
	next := conf.withDown(all, func(i int) bool { return i >= len(lines[0]) })
	if next == text {
		logf(env, "%s already sends traffic to %s only", n, to.Name)
		return nil
	}
	return n.t.apply(ctx, env, text, next, mode)
}

// bgHAProxy switches with HAProxy's runtime API: the new color's server
// to ready, waiting until HAProxy's checks see it up, then the old one to
// drain, waiting until its sessions end. Which color is live is the
// server HAProxy sends traffic to.
type bgHAProxy struct {
	api     haproxyAPI
	backend string
	timeout time.Duration
}

func (h *bgHAProxy) String() string {
	return fmt.Sprintf("HAProxy backend %s (%s)", h.backend, h.api.addr)
}

func (h *bgHAProxy) record() bgRecord {
	return bgRecord{Kind: "haproxy", Socket: h.api.addr, Backend: h.backend, Timeout: h.timeout.String()}
}

func (h *bgHAProxy) target(c bgColor) haproxyTarget {
	return haproxyTarget{api: h.api, backend: h.backend, server: c.Server, timeout: h.timeout}
}

func (h *bgHAProxy) live(ctx context.Context, colors [2]bgColor) (int, string, error) {
	var up []int
	var desc []string
	for i, c := range colors {
		s, _, err := h.api.server(ctx, h.backend, c.Server)
		if err != nil {
			return 0, "", err
		}
		desc = append(desc, fmt.Sprintf("%s %s", c.Name, s.Status))
		if s.inTraffic() && !s.heldOut() {
			up = append(up, i)
		}
	}
	evidence := h.String() + ": " + strings.Join(desc, ", ")
	switch len(up) {
	case 1:
		return up[0], evidence, nil
	case 2:
		return 0, "", fmt.Errorf("both colors are in traffic (%s), so neither is idle to take the release; set the one to replace to maint first (set server %s/NAME state maint)", evidence, h.backend)
	}
	return 0, "", fmt.Errorf("no color is in traffic (%s): there is no live color to keep serving during the switch; put one in traffic first", evidence)
}

func (h *bgHAProxy) switchTo(ctx context.Context, env *executor.Env, to, from bgColor) error {
	if err := h.target(to).ready(ctx, env); err != nil {
		return err
	}
	return h.target(from).drain(ctx, env)
}

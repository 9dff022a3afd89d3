package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// TypeBlueGreen is the blue-green step: two colors of a service (two
// instances of a template unit, each on its own port and code directory)
// behind one load balancer. The release goes to the idle color, which is
// started and verified while the live one serves; then traffic switches,
// the new color is observed, and the old one is stopped after a delay (or
// kept, so that going back is a traffic switch).
const TypeBlueGreen = "blue_green"

// Defaults of the blue-green step, as Argo Rollouts' blueGreen strategy
// has them where it has one (scaleDownDelaySeconds is 30).
const (
	defaultBGObserve        = 10 * time.Second
	defaultBGScaleDownDelay = 30 * time.Second
)

var (
	bgColorType = cty.ObjectWithOptionalAttrs(map[string]cty.Type{
		"unit":    cty.String,
		"address": cty.String,
		"server":  cty.String,
		"dir":     cty.String,
		"health":  cty.String,
	}, []string{"unit", "server", "dir", "health"})
	bgNginxType = cty.ObjectWithOptionalAttrs(map[string]cty.Type{
		"file":     cty.String,
		"upstream": cty.String,
		"nginx":    cty.String,
		"conf":     cty.String,
		"pid_file": cty.String,
	}, []string{"upstream", "nginx", "conf", "pid_file"})
	bgHAProxyType = cty.Object(map[string]cty.Type{
		"socket":  cty.String,
		"backend": cty.String,
	})
	bgCheckType = cty.ObjectWithOptionalAttrs(map[string]cty.Type{
		"path":          cty.String,
		"expect_status": cty.Number,
		"command":       cty.List(cty.String),
	}, []string{"path", "expect_status", "command"})
)

func blueGreenStepType() planner.StepType {
	return planner.StepType{
		Name: TypeBlueGreen,
		Spec: hcldec.ObjectSpec{
			"colors":           &hcldec.AttrSpec{Name: "colors", Type: cty.Map(bgColorType), Required: true},
			"nginx":            &hcldec.AttrSpec{Name: "nginx", Type: bgNginxType},
			"haproxy":          &hcldec.AttrSpec{Name: "haproxy", Type: bgHAProxyType},
			"from":             &hcldec.AttrSpec{Name: "from", Type: cty.String},
			"shared":           &hcldec.AttrSpec{Name: "shared", Type: cty.List(cty.String)},
			"keep":             &hcldec.AttrSpec{Name: "keep", Type: cty.Number},
			"checks":           &hcldec.AttrSpec{Name: "checks", Type: cty.List(bgCheckType)},
			"observe":          &hcldec.AttrSpec{Name: "observe", Type: cty.String},
			"scale_down_delay": &hcldec.AttrSpec{Name: "scale_down_delay", Type: cty.String},
			"keep_old":         &hcldec.AttrSpec{Name: "keep_old", Type: cty.Bool},
			// restart_idle = false leaves an idle color that is already
			// running (kept with keep_old) as it is: it is verified and
			// gets the traffic, so going back is a switch, not a start.
			"restart_idle": &hcldec.AttrSpec{Name: "restart_idle", Type: cty.Bool},
			"timeout":      &hcldec.AttrSpec{Name: "timeout", Type: cty.String},
		},
		Rollback: "traffic back on the color that was live (started and verified first if it was stopped), the new color stopped, its code switched back",
		Validate: validateAll(validateBlueGreen, validateSharedPaths("shared"), validateKeep("keep"),
			validateDurations("observe", "scale_down_delay", "timeout")),
		Estimate:     blueGreenEstimate,
		Detail:       blueGreenDetail,
		Summary:      blueGreenSummary,
		Needs:        blueGreenNeeds,
		CheckService: blueGreenCheckService,
		// The switch, the release and the colors' units all act where
		// rollout runs.
		NotOnHosts: "its load balancer, its colors' code directories and units are on the machine rollout runs on",
	}
}

// bgColor is one color of a blue-green service.
type bgColor struct {
	Name    string `json:"name"`
	Unit    string `json:"unit"`
	Address string `json:"address"` // host:port, as the nginx upstream names the server
	Server  string `json:"server"`  // the HAProxy server's name
	Dir     string `json:"dir,omitempty"`
	Health  string `json:"health"` // the URL its health check asks
}

// bgCheck is a pre-switch check of the idle color (Argo's prePromotionAnalysis).
type bgCheck struct {
	Path    string   `json:"path,omitempty"`
	Expect  int      `json:"expect_status,omitempty"`
	Command []string `json:"command,omitempty"`
}

// readColors reads the colors argument, sorted by name; "" units and
// health URLs are left for the builder's defaults.
func readColors(v cty.Value) ([]bgColor, error) {
	v, _ = v.UnmarkDeep()
	if v.IsNull() || !v.IsWhollyKnown() {
		return nil, errors.New("colors is not known when the plan is compiled")
	}
	var out []bgColor
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		c := bgColor{Name: k.AsString()}
		if e.IsNull() {
			return nil, fmt.Errorf("color %q is null", c.Name)
		}
		get := func(name string) string {
			a := e.GetAttr(name)
			if a.IsNull() {
				return ""
			}
			return a.AsString()
		}
		c.Unit, c.Address, c.Server, c.Dir, c.Health = get("unit"), get("address"), get("server"), get("dir"), get("health")
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func objString(v cty.Value, name string) string {
	if v.IsNull() || !v.Type().IsObjectType() || !v.Type().HasAttribute(name) {
		return ""
	}
	a := v.GetAttr(name)
	if a.IsNull() || !a.IsKnown() {
		return ""
	}
	s, err := convert.Convert(a, cty.String)
	if err != nil || s.IsNull() {
		return ""
	}
	return s.AsString()
}

// validateBlueGreen refuses what cannot work: not exactly two colors, no
// load balancer to switch (or two), colors sharing a port, a unit, a
// server or a code directory, a deploy without code directories.
func validateBlueGreen(args map[string]cty.Value, rng func(arg string) hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(arg, summary, detail string) {
		diags = append(diags, invalidArg(rng(arg), summary, detail))
	}
	v, ok := knownArg(args, "colors")
	var colors []bgColor
	if ok {
		var err error
		if colors, err = readColors(v); err != nil {
			bad("colors", "Invalid colors", err.Error()+".")
			colors = nil
		}
	}
	if ok && len(colors) != 2 {
		names := make([]string, len(colors))
		for i, c := range colors {
			names[i] = c.Name
		}
		bad("colors", "Blue-green needs two colors",
			fmt.Sprintf("A blue-green service runs as exactly two colors, one serving while the other takes the release, but colors has %d (%s). Declare two, such as colors = { blue = { address = \"127.0.0.1:8001\" }, green = { address = \"127.0.0.1:8002\" } }.",
				len(colors), listOrNone(names)))
	}
	nginx, hasNginx := knownArg(args, "nginx")
	_, hasHAProxy := knownArg(args, "haproxy")
	switch {
	case !hasNginx && !hasHAProxy:
		bad("colors", "Blue-green without a load balancer",
			"A blue-green step switches traffic from one color to the other, so it needs the load balancer that sends it: set nginx = { file = \"/etc/nginx/conf.d/api-upstream.conf\" } (an upstream file listing both colors' servers, the idle one `down`) or haproxy = { socket = \"/run/haproxy/admin.sock\", backend = \"api\" }.")
	case hasNginx && hasHAProxy:
		bad("haproxy", "Two load balancers for one switch",
			"Both nginx and haproxy are set, so traffic would be switched in two places that can disagree. Keep the one that sends the service its traffic.")
	}
	if hasNginx {
		for _, name := range []string{"file", "conf", "pid_file"} {
			if s := objString(nginx, name); s != "" && !filepath.IsAbs(s) {
				bad("nginx", "Relative path",
					fmt.Sprintf("nginx.%s must be an absolute path, but it is %q: nginx and rollout would resolve a relative one from different directories. Give the full path.", name, s))
			}
		}
	}
	if hv, ok := knownArg(args, "haproxy"); ok {
		if s := objString(hv, "socket"); s != "" {
			if _, _, err := haproxyNetwork(s); err != nil {
				bad("haproxy", "Invalid HAProxy socket",
					fmt.Sprintf("haproxy.socket must be the path of HAProxy's admin socket (such as \"/run/haproxy/admin.sock\") or its TCP address (such as \"127.0.0.1:9999\"), but %s.", err))
			}
		}
	}
	type bound struct{ host, port, color string }
	var ports []bound
	seen := map[string]map[string]string{"unit": {}, "server": {}, "dir": {}}
	for _, c := range colors {
		host, port, err := net.SplitHostPort(c.Address)
		if err != nil || port == "" {
			bad("colors", "Invalid color address",
				fmt.Sprintf("Color %q has address %q, but it must be host:port as the load balancer names the server (such as \"127.0.0.1:8001\").", c.Name, c.Address))
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			bad("colors", "Invalid color address",
				fmt.Sprintf("Color %q has address %q, whose port is not a number from 1 to 65535.", c.Name, c.Address))
			continue
		}
		for _, o := range ports {
			// One port on one host, or on a wildcard address that takes
			// it on every interface.
			if o.port == port && (o.host == host || wildcardHost(o.host) || wildcardHost(host)) {
				bad("colors", "Colors on the same port",
					fmt.Sprintf("Colors %q and %q both listen on port %s, so the idle color could not start while the live one serves. Give each color its own port.", o.color, c.Name, port))
			}
		}
		ports = append(ports, bound{host, port, c.Name})
		for _, fv := range [][2]string{{"unit", c.Unit}, {"server", c.Server}, {"dir", c.Dir}} {
			field, val := fv[0], fv[1]
			if val == "" {
				continue
			}
			if other, dup := seen[field][val]; dup {
				bad("colors", "Colors share a "+field,
					fmt.Sprintf("Colors %q and %q have the same %s %q, so deploying to the idle color would change the live one. Give each color its own %s.", other, c.Name, field, val, field))
			}
			seen[field][val] = c.Name
		}
		if c.Dir != "" && !filepath.IsAbs(c.Dir) {
			bad("colors", "Relative path",
				fmt.Sprintf("The dir of color %q must be an absolute path, but it is %q.", c.Name, c.Dir))
		}
	}
	if from, ok := knownString(args, "from"); ok && from != "" {
		for _, c := range colors {
			if c.Dir == "" {
				bad("from", "Deploy without code directories",
					fmt.Sprintf("from deploys a release into the idle color's code directory, but color %q has no dir. Give each color its dir (the base holding releases/ and current, such as \"/srv/api/%s\"), and run its unit from dir/current.", c.Name, c.Name))
				break
			}
		}
	}
	if cv, ok := knownArg(args, "checks"); ok && cv.CanIterateElements() {
		for it := cv.ElementIterator(); it.Next(); {
			_, e := it.Element()
			hasPath, hasCmd := objString(e, "path") != "", !e.GetAttr("command").IsNull()
			if hasPath == hasCmd {
				bad("checks", "Invalid check",
					"Each check is either { path = \"/smoke\", expect_status = 200 } (an HTTP GET of the idle color's address) or { command = [\"./smoke-test\"] } (run with ROLLOUT_COLOR and ROLLOUT_ADDRESS set), not both and not neither.")
				break
			}
		}
	}
	// In source order, as the planner prints the rest.
	sort.SliceStable(diags, func(i, j int) bool {
		return diags[i].Subject != nil && diags[j].Subject != nil && diags[i].Subject.Start.Byte < diags[j].Subject.Start.Byte
	})
	return diags
}

func wildcardHost(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// blueGreenEstimate: the observe window and the scale-down delay always
// pass; the color's start and checks, the switch's waits at most their
// bounds.
func blueGreenEstimate(args map[string]cty.Value, h *planner.Health) planner.Span {
	r := &argReader{args: args}
	observe, ok := r.duration("observe")
	if !ok {
		observe = defaultBGObserve
	}
	delay, ok := r.duration("scale_down_delay")
	if !ok {
		delay = defaultBGScaleDownDelay
	}
	if keep, _ := r.boolean("keep_old"); keep {
		delay = 0
	}
	lb, ok := r.duration("timeout")
	if !ok {
		lb = defaultNginxTimeout
	}
	var hw time.Duration
	if h != nil {
		hw = healthWorst(*h)
	}
	typical := observe + delay
	return planner.Span{Typical: typical, Worst: typical + defaultJobTimeout + 2*hw + 2*lb}
}

// blueGreenDetail is what plan show prints under the step: the colors and
// the switch, in the order the step does them.
func blueGreenDetail(args map[string]cty.Value, svc *planner.Service) []string {
	v, ok := knownArg(args, "colors")
	if !ok {
		return nil
	}
	colors, err := readColors(v)
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range colors {
		unit := c.Unit
		if unit == "" && svc != nil {
			var err error
			if unit, err = templateInstance(svc.Unit, c.Name); err != nil {
				unit = "(no unit: " + err.Error() + ")"
			}
		}
		s := fmt.Sprintf("color %s: %s at %s", c.Name, unit, c.Address)
		if c.Dir != "" {
			s += ", code " + filepath.Join(c.Dir, currentLink)
		}
		out = append(out, s)
	}
	lb := "?"
	if nv, ok := knownArg(args, "nginx"); ok {
		lb = "nginx upstream file " + objString(nv, "file")
		if up := objString(nv, "upstream"); up != "" {
			lb += " (upstream " + up + ")"
		}
	} else if hv, ok := knownArg(args, "haproxy"); ok {
		lb = fmt.Sprintf("HAProxy backend %s (socket %s)", objString(hv, "backend"), objString(hv, "socket"))
	}
	r := &argReader{args: args}
	out = append(out, "live color: read from "+lb+" when the run starts; the other one is idle")
	seq := []string{}
	if from, ok := r.str("from"); ok && from != "" {
		seq = append(seq, "deploy "+from+" to the idle color")
	}
	seq = append(seq, "start the idle color", "verify its health")
	if n := countList(args, "checks"); n > 0 {
		seq = append(seq, fmt.Sprintf("run %d pre-switch check(s)", n))
	}
	seq = append(seq, "SWITCH traffic to it")
	observe, ok := r.duration("observe")
	if !ok {
		observe = defaultBGObserve
	}
	seq = append(seq, "observe "+observe.String())
	if keep, _ := r.boolean("keep_old"); keep {
		seq = append(seq, "keep the old color running (rolling back is a switch)")
	} else {
		delay, ok := r.duration("scale_down_delay")
		if !ok {
			delay = defaultBGScaleDownDelay
		}
		seq = append(seq, "stop the old color after "+delay.String())
	}
	out = append(out, strings.Join(seq, ", then "))
	out = append(out, "on failure: traffic stays on, or goes back to, the old color; the old color is never stopped before the new one is verified and observed")
	return out
}

// blueGreenSummary names the strategy for the graphs of plan show.
func blueGreenSummary(args map[string]cty.Value) string {
	v, ok := knownArg(args, "colors")
	if !ok {
		return "blue-green"
	}
	colors, err := readColors(v)
	if err != nil {
		return "blue-green"
	}
	names := make([]string, len(colors))
	for i, c := range colors {
		names[i] = c.Name
	}
	via := ""
	if _, ok := knownArg(args, "nginx"); ok {
		via = " via nginx"
	} else if _, ok := knownArg(args, "haproxy"); ok {
		via = " via HAProxy"
	}
	return "blue-green " + strings.Join(names, " ⇄ ") + via
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func countList(args map[string]cty.Value, name string) int {
	v, ok := knownArg(args, name)
	if !ok || !v.CanIterateElements() {
		return 0
	}
	return v.LengthInt()
}

// blueGreenStep is the step, built for one service.
type blueGreenStep struct {
	colors  [2]bgColor
	lb      bgSwitcher
	from    string
	shared  []string
	keep    int
	checks  []bgCheck
	observe time.Duration
	delay   time.Duration
	keepOld bool
	// noRestart: an idle color already running is switched to as it is.
	noRestart bool
	health    planner.Health // timeout, retries, interval of the colors' checks
	unitJob   unitJob        // timeouts and backend; unit set per color
	interval  time.Duration  // between observe probes
	now       func() time.Time
}

func (b *builder) buildBlueGreen(svc *planner.Service, step *planner.Step, r *argReader) (executor.Step, error) {
	v, ok := r.value("colors", cty.Map(bgColorType))
	if !ok {
		return nil, errors.New("colors is required")
	}
	colors, err := readColors(v)
	if err != nil {
		return nil, err
	}
	if len(colors) != 2 {
		return nil, fmt.Errorf("blue-green needs exactly two colors, not %d", len(colors))
	}
	if why := colorsMismatch(colors, svc); why != "" {
		return nil, errors.New(why)
	}
	s := &blueGreenStep{keep: defaultKeepReleases, observe: defaultBGObserve, delay: defaultBGScaleDownDelay, now: time.Now}
	for i, c := range colors {
		if c.Unit == "" {
			c.Unit, err = templateInstance(svc.Unit, c.Name)
			if err != nil {
				return nil, fmt.Errorf("color %q has no unit: %w", c.Name, err)
			}
		}
		if c.Server == "" {
			c.Server = c.Name
		}
		if c.Health == "" {
			c.Health = "http://" + c.Address + "/health"
		}
		s.colors[i] = c
	}
	s.timeoutsFrom(b, svc, r)
	s.from, _ = r.str("from")
	s.shared, _ = r.strList("shared")
	if n, ok := r.integer("keep"); ok {
		s.keep = n
	}
	if d, ok := r.duration("observe"); ok {
		s.observe = d
	}
	if d, ok := r.duration("scale_down_delay"); ok {
		s.delay = d
	}
	s.keepOld, _ = r.boolean("keep_old")
	if v, ok := r.boolean("restart_idle"); ok {
		s.noRestart = !v
	}
	if cv, ok := r.value("checks", cty.List(bgCheckType)); ok {
		for it := cv.ElementIterator(); it.Next(); {
			_, e := it.Element()
			c := bgCheck{Path: objString(e, "path")}
			if es := e.GetAttr("expect_status"); !es.IsNull() {
				n, _ := es.AsBigFloat().Int64()
				c.Expect = int(n)
			}
			if cmd := e.GetAttr("command"); !cmd.IsNull() {
				for ci := cmd.ElementIterator(); ci.Next(); {
					_, a := ci.Element()
					if !a.IsNull() {
						c.Command = append(c.Command, a.AsString())
					}
				}
			}
			s.checks = append(s.checks, c)
		}
	}
	timeout := defaultNginxTimeout
	if d, ok := r.duration("timeout"); ok {
		timeout = d
	}
	nv, hasNginx := r.value("nginx", bgNginxType)
	hv, hasHAProxy := r.value("haproxy", bgHAProxyType)
	switch {
	case hasNginx && !hasHAProxy:
		t := nginxTarget{file: objString(nv, "file"), upstream: objString(nv, "upstream"), nginx: "nginx", pidFile: defaultNginxPidFile, conf: objString(nv, "conf"), timeout: timeout}
		if p := objString(nv, "nginx"); p != "" {
			t.nginx = p
		}
		if p := objString(nv, "pid_file"); p != "" {
			t.pidFile = p
		}
		if t.file == "" {
			return nil, errors.New("nginx.file is required")
		}
		s.lb = &bgNginx{t: t}
	case hasHAProxy && !hasNginx:
		s.lb = &bgHAProxy{api: haproxyAPI{addr: objString(hv, "socket")}, backend: objString(hv, "backend"), timeout: timeout}
	default:
		return nil, errors.New("set exactly one of nginx and haproxy")
	}
	return s, nil
}

func (s *blueGreenStep) timeoutsFrom(b *builder, svc *planner.Service, r *argReader) {
	s.health = serviceHealth(svc)
	s.unitJob = unitJob{timeout: defaultJobTimeout, sd: b.sd, check: b.checkHealth}
	s.unitJob.rollbackTimeout = rollbackJobTimeout(s.unitJob.timeout)
	s.interval = s.health.Interval
	if s.interval <= 0 {
		s.interval = time.Second
	}
}

// colorsMismatch says how the step's colors differ from the service's
// `colors`; "" when they agree or the service declares none.
func colorsMismatch(colors []bgColor, svc *planner.Service) string {
	if svc == nil || len(svc.Colors) == 0 {
		return ""
	}
	names := make([]string, len(colors))
	for i, c := range colors {
		names[i] = c.Name
	}
	if want := slices.Sorted(slices.Values(svc.Colors)); !slices.Equal(names, want) {
		return fmt.Sprintf("the step's colors (%s) are not the service's colors (%s); name the same two in both", strings.Join(names, ", "), strings.Join(want, ", "))
	}
	return ""
}

// blueGreenCheckService is the planner's check of the step against its
// service: the same colors.
func blueGreenCheckService(args map[string]cty.Value, svc *planner.Service) string {
	v, ok := knownArg(args, "colors")
	if !ok {
		return ""
	}
	colors, err := readColors(v)
	if err != nil {
		return ""
	}
	return colorsMismatch(colors, svc)
}

// templateInstance is the unit of instance inst of a template unit
// ("api@.service", "blue" → "api@blue.service").
func templateInstance(template, inst string) (string, error) {
	at := strings.Index(template, "@.")
	if at < 0 {
		return "", fmt.Errorf("the service's unit %q is not a template unit (NAME@.service); set the color's unit", template)
	}
	return template[:at+1] + inst + template[at+1:], nil
}

// colorHealth is the health check of one color: an HTTP GET of its health
// URL with the service's timeout, retries and interval.
func (s *blueGreenStep) colorHealth(c bgColor) planner.Health {
	return bgColorHealth(s.health, c)
}

func bgColorHealth(base planner.Health, c bgColor) planner.Health {
	h := base
	h.Kind, h.URL, h.ExpectStatus, h.Address, h.Command = dsl.HealthHTTP, c.Health, 0, "", nil
	return h
}

func (s *blueGreenStep) unitOf(c bgColor) *unitJob {
	j := s.unitJob
	j.unit = c.Unit
	j.health = s.colorHealth(c)
	return &j
}

// Do runs the phases. Every phase after the first change is covered by
// the undo it returns, which is journaled before the change.
func (s *blueGreenStep) Do(ctx context.Context, env *executor.Env) (executor.Undo, error) {
	env.Phase("detect")
	liveIdx, evidence, err := s.lb.live(ctx, s.colors)
	if err != nil {
		return nil, err
	}
	live, idle := s.colors[liveIdx], s.colors[1-liveIdx]
	logf(env, "live color: %s (%s); deploying to %s (%s)", live.Name, evidence, idle.Name, idle.Unit)
	env.Report(fmt.Sprintf("live before: %s", live.Name))
	u := &bgUndo{Live: live, Idle: idle, LB: s.lb.record(), Health: s.health, unitJob: s.unitJob}
	u.lb = s.lb

	if s.from != "" {
		env.Phase("deploy " + idle.Name)
		rel := &releaseStep{from: s.from, base: idle.Dir, shared: s.shared, keep: s.keep, now: s.now, fs: localFS{}}
		prev, err := readCurrent(idle.Dir)
		if err != nil {
			return nil, err
		}
		// In the journal before the copy: a crash mid-copy is recovered by
		// removing the new (or partial) release.
		u.Release = &releaseUndo{base: idle.Dir, back: prev, discard: rel.releaseID(), keep: s.keep}
		if err := env.JournalInFlight(u.Record()); err != nil {
			return nil, err
		}
		ru, err := rel.Do(ctx, env)
		if r, ok := ru.(*releaseUndo); ok && r != nil {
			u.Release = r
		} else {
			// Nothing a service sees changed; a partial copy was removed.
			u.Release = nil
		}
		if err != nil {
			return u.orNil(), err
		}
	}

	env.Phase("start " + idle.Name)
	j := s.unitOf(idle)
	before, err := j.prepare(ctx, env)
	if err != nil {
		return u.orNil(), err
	}
	u.IdleWasActive = isActive(before.ActiveState)
	err = s.startIdle(ctx, env, u, j, before)
	if err != nil {
		return u.orNil(), fmt.Errorf("%s (idle color, traffic stays on %s): %w", idle.Name, live.Name, err)
	}
	started, err := statusOf(ctx, j.sd, j.unit, afterRestartFields)
	if err != nil {
		return u, err
	}

	env.Phase("verify " + idle.Name)
	if !forced(env) {
		if err := verifyHealth(ctx, env, j.check, j.health, j.unit, j.sd); err != nil {
			return u, fmt.Errorf("%s failed its health check before the switch, traffic stays on %s: %w", idle.Name, live.Name, err)
		}
		for k, c := range s.checks {
			if err := s.runCheck(ctx, env, idle, c); err != nil {
				return u, fmt.Errorf("%s failed pre-switch check %d before the switch, traffic stays on %s: %w", idle.Name, k+1, live.Name, err)
			}
		}
	}

	env.Phase(fmt.Sprintf("switch %s → %s", live.Name, idle.Name))
	u.Switched = true
	if err := env.JournalInFlight(u.Record()); err != nil {
		u.Switched = false
		return u, err
	}
	if err := s.lb.switchTo(ctx, env, idle, live); err != nil {
		return u, fmt.Errorf("switching traffic to %s: %w", idle.Name, err)
	}
	logf(env, "switched: traffic on %s (%s), %s out", idle.Name, idle.Address, live.Name)
	env.Report(fmt.Sprintf("switched %s → %s", live.Name, idle.Name))

	env.Phase("observe " + idle.Name)
	if !forced(env) {
		if err := s.watch(ctx, env, j, started.InvocationID); err != nil {
			return u, fmt.Errorf("%s failed while observed after the switch: %w", idle.Name, err)
		}
	}

	if s.keepOld {
		logf(env, "%s kept running: rolling back is a traffic switch", live.Name)
		env.Report(fmt.Sprintf("live after: %s; %s kept", idle.Name, live.Name))
		return u, nil
	}
	env.Phase(fmt.Sprintf("scale down %s in %s", live.Name, s.delay))
	if err := sleepCtx(ctx, s.delay); err != nil {
		return u, err
	}
	u.StoppedOld = true
	if err := env.JournalInFlight(u.Record()); err != nil {
		u.StoppedOld = false
		return u, err
	}
	if err := s.unitOf(live).job(ctx, OpStop); err != nil {
		return u, fmt.Errorf("stopping the old color %s: %w", live.Name, err)
	}
	logf(env, "stopped %s (%s)", live.Name, live.Unit)
	env.Report(fmt.Sprintf("live after: %s; %s stopped", idle.Name, live.Name))
	return u, nil
}

// startIdle starts the idle color, or restarts it when it runs (a kept
// color runs the code it had; a restart runs the new one), unless it is
// kept and restart_idle = false. The undo is journaled before the job.
func (s *blueGreenStep) startIdle(ctx context.Context, env *executor.Env, u *bgUndo, j *unitJob, before UnitState) error {
	if u.IdleWasActive && s.noRestart && s.from == "" {
		logf(env, "%s is running (kept): verified and switched to as it is", j.unit)
		return nil
	}
	u.Started = true
	if err := env.JournalInFlight(u.Record()); err != nil {
		u.Started = false
		return err
	}
	if u.IdleWasActive {
		return j.restart(ctx, env, before)
	}
	if err := j.job(ctx, OpStart); err != nil {
		return err
	}
	st, err := statusOf(ctx, j.sd, j.unit, afterRestartFields)
	if err != nil {
		return err
	}
	if !isActive(st.ActiveState) {
		return fmt.Errorf("%s is %s after start", j.unit, describeState(st))
	}
	logf(env, "started %s (InvocationID %s)", j.unit, displayID(st.InvocationID))
	return nil
}

// watch observes the new color for the window: its health on every
// interval, and the unit never restarted or stopped.
func (s *blueGreenStep) watch(ctx context.Context, env *executor.Env, j *unitJob, invocation string) error {
	end := s.now().Add(s.observe)
	probes := 0
	for {
		st, err := statusOf(ctx, j.sd, j.unit, afterRestartFields)
		if err != nil {
			return err
		}
		if !isActive(st.ActiveState) || st.InvocationID != invocation {
			return fmt.Errorf("%s is %s (InvocationID %s, was %s)", j.unit, describeState(st), displayID(st.InvocationID), displayID(invocation))
		}
		if err := verifyHealth(ctx, env, j.check, j.health, j.unit, j.sd); err != nil {
			return err
		}
		probes++
		left := end.Sub(s.now())
		if left <= 0 {
			logf(env, "observed %s: %d checks passed", s.observe, probes)
			return nil
		}
		if err := sleepCtx(ctx, min(s.interval, left)); err != nil {
			return err
		}
	}
}

func (s *blueGreenStep) runCheck(ctx context.Context, env *executor.Env, c bgColor, chk bgCheck) error {
	if len(chk.Command) > 0 {
		return runCommand(ctx, env, Local{}, command{argv: chk.Command, timeout: s.health.Timeout,
			env: []string{"ROLLOUT_ADDRESS=" + c.Address, "ROLLOUT_COLOR=" + c.Name, "ROLLOUT_UNIT=" + c.Unit}})
	}
	h := s.health
	h.Kind, h.URL, h.ExpectStatus = dsl.HealthHTTP, "http://"+c.Address+chk.Path, chk.Expect
	h.Retries = 1
	return verifyHealth(ctx, env, s.unitJob.check, h, c.Unit, s.unitJob.sd)
}

// bgUndo puts things back as far as Do got: the old color started and
// verified again if it was stopped, traffic back on it, the new color
// stopped (or restarted on its old code, if it was running before), its
// code switched back.
type bgUndo struct {
	Live          bgColor        `json:"live"`
	Idle          bgColor        `json:"idle"`
	LB            bgRecord       `json:"lb"`
	Health        planner.Health `json:"health"`
	Release       *releaseUndo   `json:"-"`
	IdleWasActive bool           `json:"idle_was_active"`
	Started       bool           `json:"started"`
	Switched      bool           `json:"switched"`
	StoppedOld    bool           `json:"stopped_old"`

	lb      bgSwitcher
	unitJob unitJob
}

// orNil returns u when it has something to undo.
func (u *bgUndo) orNil() executor.Undo {
	if u.Release == nil && !u.Started && !u.Switched && !u.StoppedOld {
		return nil
	}
	return u
}

func (u *bgUndo) unitOf(c bgColor) *unitJob {
	j := u.unitJob
	j.unit = c.Unit
	j.health = bgColorHealth(u.Health, c)
	return &j
}

func (u *bgUndo) Describe() string {
	var parts []string
	if u.StoppedOld {
		parts = append(parts, fmt.Sprintf("start %s (%s), verify it", u.Live.Name, u.Live.Unit))
	}
	if u.Switched {
		parts = append(parts, fmt.Sprintf("switch traffic back to %s", u.Live.Name))
	}
	if u.Started {
		parts = append(parts, fmt.Sprintf("stop %s", u.Idle.Unit))
	}
	if u.Release != nil {
		parts = append(parts, u.Release.Describe())
	}
	if u.Started && u.IdleWasActive {
		parts = append(parts, fmt.Sprintf("start %s again", u.Idle.Unit))
	}
	return strings.Join(parts, ", ")
}

func (u *bgUndo) Undo(ctx context.Context, env *executor.Env) error {
	if u.StoppedOld {
		// Traffic goes back only to a color that is up and verified.
		if err := startAndVerify(ctx, env, u.unitOf(u.Live)); err != nil {
			return fmt.Errorf("the old color %s did not come back, traffic stays on %s: %w", u.Live.Name, u.Idle.Name, err)
		}
	}
	if u.Switched {
		if err := u.lb.switchTo(ctx, env, u.Live, u.Idle); err != nil {
			return fmt.Errorf("switching traffic back to %s: %w", u.Live.Name, err)
		}
		logf(env, "traffic back on %s", u.Live.Name)
		env.Report(fmt.Sprintf("traffic back on %s", u.Live.Name))
	} else {
		env.Report(fmt.Sprintf("traffic stayed on %s", u.Live.Name))
	}
	var errs []error
	j := u.unitOf(u.Idle)
	if u.Started {
		if err := j.undoJob(ctx, OpStop); err != nil {
			errs = append(errs, err)
		} else {
			logf(env, "stopped %s", u.Idle.Unit)
		}
	}
	if u.Release != nil {
		if err := u.Release.Undo(ctx, env); err != nil {
			errs = append(errs, err)
		}
	}
	if u.Started && u.IdleWasActive && len(errs) == 0 {
		// It ran (kept as the way back) before: it runs again, on the
		// code it had.
		if err := startAndVerify(ctx, env, j); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Commit implements executor.Committer: the release's pruning.
func (u *bgUndo) Commit(ctx context.Context) error {
	if u.Release != nil {
		return u.Release.Commit(ctx)
	}
	return nil
}

var (
	_ executor.Undo      = (*bgUndo)(nil)
	_ executor.Committer = (*bgUndo)(nil)
)

// RecordBlueGreen is the journal record of a blue-green step's undo, so
// that `rollout recover` puts traffic back on the color that was live
// after a run died mid-switch.
const RecordBlueGreen = "blue_green_back"

// Record implements executor.Recordable.
func (u *bgUndo) Record() executor.UndoRecord {
	state, _ := json.Marshal(u)
	args := map[string]string{"state": string(state), "timeout": u.unitJob.timeout.String()}
	if u.Release != nil {
		args["release_base"], args["release_back"], args["release_discard"] = u.Release.base, u.Release.back, u.Release.discard
	}
	return executor.UndoRecord{Kind: RecordBlueGreen, Args: args}
}

// recoverBlueGreen rebuilds a blue-green undo from its record.
func recoverBlueGreen(a *recordArgs, deps Deps) executor.Undo {
	u := &bgUndo{}
	a.jsonArg("state", u, true)
	if a.err != nil {
		return nil
	}
	lb, err := u.LB.switcher()
	if err != nil {
		a.err = err
		return nil
	}
	u.lb = lb
	u.unitJob = unitJob{timeout: a.duration("timeout", defaultJobTimeout), sd: deps.Systemd, check: CheckHealth}
	u.unitJob.rollbackTimeout = rollbackJobTimeout(u.unitJob.timeout)
	if base := a.get("release_base"); base != "" {
		u.Release = &releaseUndo{base: base, back: a.get("release_back"), discard: a.get("release_discard")}
		for _, id := range []string{u.Release.back, u.Release.discard} {
			if id != "" && !validReleaseID(id) && a.err == nil {
				a.err = fmt.Errorf("record %s: %q is not a release id", a.kind, id)
			}
		}
	}
	if a.err == nil && (u.Live.Unit == "" || u.Idle.Unit == "") {
		a.err = fmt.Errorf("record %s: a color without a unit", a.kind)
	}
	return u
}

// blueGreenNeeds: both colors' units loaded, nginx where the switch runs
// it, the release to deploy.
func blueGreenNeeds(args map[string]cty.Value, svc *planner.Service) planner.Needs {
	var n planner.Needs
	if v, ok := knownArg(args, "colors"); ok {
		if colors, err := readColors(v); err == nil {
			for _, c := range colors {
				unit := c.Unit
				if unit == "" {
					unit, _ = templateInstance(svc.Unit, c.Name)
				}
				if unit != "" {
					n.Units = append(n.Units, unit)
				}
				if c.Dir != "" {
					n.Dirs = append(n.Dirs, c.Dir)
				}
			}
		}
	}
	if nv, ok := knownArg(args, "nginx"); ok {
		n.Programs = append(n.Programs, planner.Program{Name: orDefault(objString(nv, "nginx"), "nginx"), Use: "nginx -t and reload"})
	}
	if from, ok := knownString(args, "from"); ok && from != "" {
		n.Copies = append(n.Copies, planner.Copy{From: from})
	}
	return n
}

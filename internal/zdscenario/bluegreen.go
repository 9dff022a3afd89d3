package zdscenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Blue-green: the service x-bg as two instances of one template unit,
// rt-zd-bg@blue.service and rt-zd-bg@green.service, each on its own port
// and running its code from BASE/COLOR/current (a release directory), behind
// nginx, whose upstream file lists both with the idle one `down`.

// BGTemplate is the template unit of the two colors.
const BGTemplate = "rt-zd-bg@.service"

// BGFirstRelease is the release each color holds before the first run.
const BGFirstRelease = "20260101T000000Z-000001"

// Color is one color of the blue-green service.
type Color struct {
	Name    string // "blue"
	Unit    string // "rt-zd-bg@blue.service"
	Port    int
	Base    string // BASE/blue: releases/, current
	EnvFile string
}

// Addr is the color's address as the nginx upstream names it.
func (c Color) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.Port) }

// Colors describes blue and green under base on the two ports.
func Colors(base string, bluePort, greenPort int) [2]Color {
	var out [2]Color
	for i, name := range []string{"blue", "green"} {
		port := bluePort
		if i == 1 {
			port = greenPort
		}
		out[i] = Color{
			Name:    name,
			Unit:    strings.Replace(BGTemplate, "@", "@"+name, 1),
			Port:    port,
			Base:    filepath.Join(base, name),
			EnvFile: filepath.Join(base, name+".env"),
		}
	}
	return out
}

// SetUpColor writes the color's port file and its first release (VERSION
// version) with `current` pointing at it.
func SetUpColor(c Color, version string) error {
	rel := filepath.Join(c.Base, "releases", BGFirstRelease)
	if err := os.MkdirAll(rel, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rel, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.EnvFile, []byte(fmt.Sprintf("PORT=%d\n", c.Port)), 0o644); err != nil {
		return err
	}
	return os.Symlink("releases/"+BGFirstRelease, filepath.Join(c.Base, "current"))
}

// BGTemplateUnit runs testsvc (bin) for color %i from base/%i/current,
// ready ReadyDelay after it starts with its port open meanwhile.
func BGTemplateUnit(bin, base string) string {
	return fmt.Sprintf(`[Unit]
Description=rollout blue-green test color %%i

[Service]
Type=exec
EnvironmentFile=%[2]s/%%i.env
ExecStart=%[1]s -addr 127.0.0.1:${PORT} -dir %[2]s/%%i/current -ready-delay %[3]s -listen-early
WorkingDirectory=%[2]s/%%i
StandardOutput=append:%[2]s/%%i.log
StandardError=inherit
`, bin, base, ReadyDelay)
}

// BGUpstream is the nginx upstream file with blue live and green idle.
func BGUpstream(colors [2]Color) string {
	return fmt.Sprintf("upstream api {\n    server %s;\n    server %s down;\n}\n", colors[0].Addr(), colors[1].Addr())
}

// BGOptions shape BlueGreenPlan.
type BGOptions struct {
	Colors                         [2]Color
	Upstream, Nginx, Conf, PidFile string
	Health                         string // the service's health URL (through nginx)
	Observe, ScaleDownDelay        string
	// Extra lines go into the step's body as they are ("keep_old = true").
	Extra string
}

// BlueGreenPlan is the plan of the blue-green service x-bg: one
// blue_green step that deploys --deploy-path to the idle color.
func BlueGreenPlan(o BGOptions) string {
	extra := ""
	if o.Extra != "" {
		extra = "\n    " + o.Extra
	}
	return fmt.Sprintf(`pipeline "bluegreen" {
  step "blue_green" "switch" {
    colors = {
      blue  = { address = %q, dir = %q }
      green = { address = %q, dir = %q }
    }
    from  = run.deploy ? run.deploy_path : null
    nginx = { file = %q, nginx = %q, conf = %q, pid_file = %q }
    observe          = %q
    scale_down_delay = %q%s
  }
}

service "x-bg" {
  unit   = %q
  colors = ["blue", "green"]
  type   = "bluegreen"
  health "http" {
    url      = %q
    timeout  = "3s"
    retries  = 2
    interval = "100ms"
  }
}

plan "blue-green" {}
`, o.Colors[0].Addr(), o.Colors[0].Base, o.Colors[1].Addr(), o.Colors[1].Base,
		o.Upstream, o.Nginx, o.Conf, o.PidFile, o.Observe, o.ScaleDownDelay, extra, BGTemplate, o.Health)
}

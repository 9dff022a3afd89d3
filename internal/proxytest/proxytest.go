// Package proxytest runs the real load balancers the zero-downtime tests
// put in front of services: HAProxy and nginx from Debian packages
// (scripts/test.sh installs them). It writes their configurations, all on
// loopback with the caller's ports, and starts them as child processes for
// tests without a systemd manager; the end-to-end tests run the same
// configurations as units.
package proxytest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/internal/testenv"
)

// Binary returns the path of a load balancer's program (haproxy, nginx).
// When it is not installed the test is skipped, or fails in CI (internal/testenv),
// where a skipped proof would pass unnoticed.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := Lookup(name)
	if err == nil {
		return p
	}
	testenv.Missing(t, "proxytest: %v", err)
	return ""
}

// Lookup finds a load balancer's program in PATH or the sbin directories
// (which a non-root PATH lacks).
func Lookup(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (Debian: apt-get install %s; scripts/test.sh installs it)", name, name)
}

// Backend is one server behind a load balancer.
type Backend struct {
	Name string // HAProxy's server name
	Port int    // on 127.0.0.1
}

// HAProxyOptions shape HAProxyConfig.
type HAProxyOptions struct {
	Port     int    // the frontend's port on 127.0.0.1
	Socket   string // the admin socket's path
	Backend  string // the backend's name
	Servers  []Backend
	CheckURL string // "/health": HTTP checks every 200 ms
}

// HAProxyConfig is a configuration as an operator would write it for
// services behind HAProxy: HTTP checks, an admin socket, and HAProxy's
// own retries and redispatch, so that what the load generator counts is
// what such a setup lets through.
func HAProxyConfig(o HAProxyOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  stats socket %s mode 600 level admin
  maxconn 2000

defaults
  mode http
  option redispatch
  retries 3
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout queue 5s

frontend fe
  bind 127.0.0.1:%d
  default_backend %s

backend %s
  balance roundrobin
  option httpchk GET %s
  default-server inter 200ms fall 2 rise 2
`, o.Socket, o.Port, o.Backend, o.Backend, o.CheckURL)
	for _, s := range o.Servers {
		fmt.Fprintf(&b, "  server %s 127.0.0.1:%d check\n", s.Name, s.Port)
	}
	return b.String()
}

// NginxOptions shape NginxConfig.
type NginxOptions struct {
	Port     int    // the server's port on 127.0.0.1
	Dir      string // pid file, logs, temp paths
	Upstream string // the upstream's name
	Include  string // the upstream file, which NginxUpstream writes
}

// NginxConfig is a main configuration in the foreground (for a unit), with
// everything it writes under Dir and the upstream block in an included
// file, as the nginx_upstream step expects.
func NginxConfig(o NginxOptions) string {
	d := o.Dir
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;

events { worker_connections 1024; }

http {
  access_log off;
  client_body_temp_path %s/client_body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  include %s;
  server {
    listen 127.0.0.1:%d;
    location / {
      proxy_pass http://%s;
      proxy_connect_timeout 2s;
    }
  }
}
`, d, d, d, d, d, d, d, o.Include, o.Port, o.Upstream)
}

// NginxUpstream is the upstream file for servers, all in traffic.
func NginxUpstream(name string, servers []Backend) string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstream %s {\n", name)
	for _, s := range servers {
		fmt.Fprintf(&b, "    server 127.0.0.1:%d;\n", s.Port)
	}
	b.WriteString("}\n")
	return b.String()
}

// Start runs argv as a child process until t ends; its output goes to
// log. It is for tests without a systemd manager.
func Start(t testing.TB, log string, argv ...string) *exec.Cmd {
	t.Helper()
	out, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
	})
	return cmd
}

// WaitListening waits until something accepts on 127.0.0.1:port.
func WaitListening(t testing.TB, port int, log string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log)
			t.Fatalf("nothing listens on 127.0.0.1:%d after 15s; log:\n%s", port, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

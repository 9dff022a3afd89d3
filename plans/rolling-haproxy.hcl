# rolling-haproxy: the SSO API run as three instances of a template unit
# (lilith-sso-api@1.service .. @3.service on ports 3011..3013) behind
# HAProxy, restarted one at a time without a request noticing: each
# instance leaves HAProxy's traffic before it stops and comes back only
# after it answers its health check (docs/zero-downtime.md).
#
#   rollout plan show plans/rolling-haproxy.hcl
#   rollout run plans/rolling-haproxy.hcl
#
# HAProxy needs an admin socket and one server per instance:
#
#   global
#     stats socket /run/haproxy/admin.sock mode 660 level admin
#   backend sso_api
#     option httpchk GET /health
#     server sso1 127.0.0.1:3011 check
#     server sso2 127.0.0.1:3012 check
#     server sso3 127.0.0.1:3013 check
#
# With nginx instead, replace the two haproxy steps with nginx_upstream
# steps (state = "down" before the restart, "up" after the check).
# plans/canary-haproxy.hcl deploys a release to the first instance, watches
# it, and only then to the others.

include = ["defaults.hcl"]

variable "haproxy_socket" {
  default     = "/run/haproxy/admin.sock"
  description = "HAProxy's admin socket (a path, or host:port)."
}

pipeline "sso-api-instance" {
  step "health_check" "precheck" {}
  step "haproxy_drain" "drain" {
    socket  = var.haproxy_socket
    backend = "sso_api"
    server  = "sso${service.instance}"
    timeout = "30s"
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "haproxy_ready" "ready" {
    socket  = var.haproxy_socket
    backend = "sso_api"
    server  = "sso${service.instance}"
  }
}

service "sso.api" {
  unit        = "lilith-sso-api@.service"
  instances   = ["1", "2", "3"]                   # lilith-sso-api@1.service ...
  port        = 3010 + service.instance_index + 1 # 3011, 3012, 3013
  pipeline    = "sso-api-instance"
  working_dir = "${var.codebase}/features/sso/backend-api"
  health "http" { url = "http://${var.host}:${service.port}/health" }
}

plan "rolling-haproxy" {
  max_parallel = 1       # one instance out of traffic at a time (the default for instances)
  on_failure   = "abort" # a failed instance is rolled back; the rest are not touched
}

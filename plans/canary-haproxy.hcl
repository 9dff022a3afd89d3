# canary-haproxy: a release of the SSO API (three instances of a template
# unit behind HAProxy, as in rolling-haproxy.hcl) goes to instance 1 first.
# rollout watches it for five minutes (its health check and its error rate
# in /metrics), then waits for a person to promote it, and only then
# deploys the other two; a canary that fails is rolled back alone
# (docs/zero-downtime.md#canary).
#
#   rollout plan show plans/canary-haproxy.hcl
#   rollout run plans/canary-haproxy.hcl --deploy --deploy-path /tmp/deploy/sso-api
#   rollout promote RUN_ID          # from another shell, or answer y on the run's terminal
#
# The release directory holds one copy per instance (DIR/1, DIR/2, DIR/3),
# and each instance runs from its own directory, so that rolling one back
# never touches another's code.

include = ["defaults.hcl"]

variable "haproxy_socket" {
  default     = "/run/haproxy/admin.sock"
  description = "HAProxy's admin socket (a path, or host:port)."
}

pipeline "sso-api-canary" {
  step "health_check" "precheck" {}
  step "haproxy_drain" "drain" {
    socket  = var.haproxy_socket
    backend = "sso_api"
    server  = "sso${service.instance}"
    timeout = "30s"
  }
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.instance}"
    to   = "${var.codebase}/features/sso/backend-api-${service.instance}"
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
  unit      = "lilith-sso-api@.service"
  instances = ["1", "2", "3"]
  port      = 3010 + service.instance_index + 1
  pipeline  = "sso-api-canary"
  health "http" { url = "http://${var.host}:${service.port}/health" }

  canary {
    count           = 1
    observe         = "5m"
    interval        = "15s"
    auto_promote    = false
    promote_timeout = "30m"
    analysis "http" {
      url       = "http://${var.host}:${service.port}/metrics"
      json_path = "errors.rate"
      max       = 0.01
    }
  }
}

plan "canary-haproxy" {
  on_failure = "abort"
}

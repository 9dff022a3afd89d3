# demo: the platform `rollout demo` brings up on your machine, twelve small
# real HTTP services shaped like the production inventory: each feature's
# stores, the APIs on top of them (the reference's example 2: sso.api, then
# merchant.api, then marketplace.api) and an ML chain (example 3: seo.redis,
# then seo.rag-retrieval, then seo.classifier). Every service is the rollout
# binary itself (`rollout demo-service`) under a systemd unit named
# rollout-demo-<name>.service; GET /health, GET /version.
#
# `rollout demo` writes this file into its demo directory and runs it with
#   rollout run demo.hcl --user --deploy --deploy-path DIR/release \
#     --var dir=DIR --var port_base=PORT
# so that every service moves from v1 to v2 (DIR/release/NAME). Each
# service runs from DIR/apps/NAME/current, a symlink to one of
# DIR/apps/NAME/releases/ID: the release step copies v2 there (in Go, no
# rsync needed) and switches the link; a rollback switches it back.
# Windows are short so the whole demo takes seconds; compare
# plans/pipelines.hcl for production values.
#
#   rollout plan show plans/demo.hcl
#   rollout plan show --format mermaid plans/demo.hcl

variable "dir" {
  default     = "/tmp/rollout-demo"
  description = "The demo directory: apps/NAME holds each service's releases and current, release/NAME what --deploy ships."
}

variable "port_base" {
  default     = 41000
  description = "Service N (1 to 12) listens on 127.0.0.1:port_base+N."
}

# Each health attempt polls its URL for up to health_timeout; a service
# here answers within tens of milliseconds, so a broken one fails its check
# in under two seconds.
defaults {
  health_timeout  = "500ms"
  health_retries  = 3
  health_interval = "100ms"
}

# ---------------------------------------------------------------------------
# How each kind of service restarts. When a step fails, the steps already
# done are undone in reverse order: `current` points back at the old
# release, the unit file is put back, and the service is restarted and
# checked again.

# Stores: deploy (a demo store has "code" too, so it visibly moves to v2),
# plain restart, verify.
pipeline "infra" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  # releases/ID next to current, then current switched in one rename;
  # `to` defaults to working_dir without its /current.
  step "release" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    keep = 3
  }
  step "restart" "restart" {
    timeout = "30s"
  }
  step "health_check" "verify" {}
  step "stabilize" "settle" {
    duration = "300ms"
  }
}

# APIs: the reference's full restart flow.
pipeline "api" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "release" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    keep = 3
  }
  # Stands in for `npx prisma migrate deploy`: any command, argv, no shell.
  step "exec" "migrate" {
    if      = !run.skip_migrations
    command = ["test", "-s", "VERSION"]
    dir     = service.working_dir
    timeout = "10s"
  }
  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" {
    duration = "300ms"
  }
}

# Model servers: no migrations; the post-restart check retries longer.
pipeline "ml" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "release" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    keep = 3
  }
  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {
    retries = 5
  }
  step "stabilize" "settle" {
    duration = "300ms"
  }
}

# ---------------------------------------------------------------------------
# Infrastructure: the stores every feature owns.

service "sso.postgresql" {
  unit        = "rollout-demo-sso-postgresql.service"
  type        = "infra"
  working_dir = "${var.dir}/apps/sso.postgresql/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 1}/health" }
}

service "sso.redis" {
  unit        = "rollout-demo-sso-redis.service"
  type        = "infra"
  working_dir = "${var.dir}/apps/sso.redis/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 2}/health" }
}

service "merchant.postgresql" {
  unit        = "rollout-demo-merchant-postgresql.service"
  type        = "infra"
  working_dir = "${var.dir}/apps/merchant.postgresql/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 3}/health" }
}

service "merchant.redis" {
  unit        = "rollout-demo-merchant-redis.service"
  type        = "infra"
  working_dir = "${var.dir}/apps/merchant.redis/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 4}/health" }
}

service "marketplace.postgresql" {
  unit        = "rollout-demo-marketplace-postgresql.service"
  type        = "infra"
  working_dir = "${var.dir}/apps/marketplace.postgresql/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 5}/health" }
}

service "seo.redis" {
  unit        = "rollout-demo-seo-redis.service"
  type        = "infra"
  working_dir = "${var.dir}/apps/seo.redis/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 6}/health" }
}

# ---------------------------------------------------------------------------
# APIs. Reference example 1: sso.postgresql and sso.redis restart before
# sso.api, the base every other API authenticates through.

service "sso.api" {
  unit        = "rollout-demo-sso-api.service"
  type        = "api"
  depends_on  = ["sso.postgresql", "sso.redis"]
  working_dir = "${var.dir}/apps/sso.api/current"
  tags        = ["core"]
  health "http" { url = "http://127.0.0.1:${var.port_base + 7}/health" }
}

# Reference example 2: sso.api, then merchant.api, then marketplace.api.
service "merchant.api" {
  unit        = "rollout-demo-merchant-api.service"
  type        = "api"
  depends_on  = ["sso.api", "merchant.postgresql", "merchant.redis"]
  working_dir = "${var.dir}/apps/merchant.api/current"
  tags        = ["core"]
  health "http" { url = "http://127.0.0.1:${var.port_base + 8}/health" }
}

service "marketplace.api" {
  unit        = "rollout-demo-marketplace-api.service"
  type        = "api"
  depends_on  = ["sso.api", "merchant.api", "marketplace.postgresql"]
  working_dir = "${var.dir}/apps/marketplace.api/current"
  tags        = ["core"]
  health "http" { url = "http://127.0.0.1:${var.port_base + 9}/health" }
}

# The storefront, on top of the marketplace API.
service "marketplace.web" {
  unit        = "rollout-demo-marketplace-web.service"
  type        = "api"
  depends_on  = ["marketplace.api"]
  working_dir = "${var.dir}/apps/marketplace.web/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 10}/health" }
}

# ---------------------------------------------------------------------------
# ML. Reference example 3: seo.redis, then seo.rag-retrieval, then
# seo.classifier.

service "seo.rag-retrieval" {
  unit        = "rollout-demo-seo-rag-retrieval.service"
  type        = "ml"
  depends_on  = ["seo.redis"]
  working_dir = "${var.dir}/apps/seo.rag-retrieval/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 11}/health" }
}

service "seo.classifier" {
  unit        = "rollout-demo-seo-classifier.service"
  type        = "ml"
  depends_on  = ["seo.rag-retrieval"]
  working_dir = "${var.dir}/apps/seo.classifier/current"
  health "http" { url = "http://127.0.0.1:${var.port_base + 12}/health" }
}

# ---------------------------------------------------------------------------

plan "demo" {
  # Up to four services at once, in dependency order. When one fails it is
  # rolled back, its dependents are skipped, and everything that does not
  # depend on it carries on, so a broken sso.api still lets the ML chain
  # finish.
  max_parallel = 4
  on_failure   = "continue"
}

# The platform of the reference's examples: three dependency chains.

variable "root" { default = "/var/www/lilith/codebase/features" }

defaults {
  health_timeout  = "10s"
  health_retries  = 3
  health_interval = "2s"
  events_log      = "/var/log/rollout/events.jsonl"
}

pipeline "infra" {
  step "health_check" "precheck" {}
  step "restart" "restart" {}
  step "health_check" "verify" {}
}

pipeline "api" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    to   = service.working_dir
  }
  step "exec" "migrate" {
    if      = !run.skip_migrations
    command = ["npx", "prisma", "migrate", "deploy"]
    dir     = service.working_dir
    timeout = "5m"
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" { duration = "30s" }
}

pipeline "default" {
  step "restart" "restart" {}
  step "stabilize" "settle" { duration = "10s" }
}

service "sso.postgresql" {
  unit = "postgresql@16-sso.service"
  type = "infra"
}

service "sso.redis" {
  unit = "redis-sso.service"
  type = "infra"
  health "tcp" {
    address = "127.0.0.1:6380"
  }
}

service "sso.api" {
  unit        = "lilith-sso-api.service"
  type        = "api"
  depends_on  = ["sso.postgresql", "sso.redis"]
  working_dir = "${var.root}/sso/backend-api"
  tags        = ["core"]
  health "http" {
    url     = "http://localhost:3001/health"
    timeout = "30s"
  }
}

service "merchant.api" {
  unit        = "lilith-merchant-api.service"
  type        = "api"
  depends_on  = ["sso.api"]
  working_dir = "${var.root}/merchant/backend-api"
  health "http" {
    url = "http://localhost:3002/health"
  }
}

service "marketplace.api" {
  unit        = "lilith-marketplace-api.service"
  type        = "api"
  depends_on  = ["merchant.api", "sso.api"]
  working_dir = "${var.root}/marketplace/backend-api"
  health "http" {
    url     = "http://localhost:3003/health"
    retries = 5
  }
}

service "seo.redis" {
  unit = "redis-seo.service"
  type = "infra"
}

service "seo.rag-retrieval" {
  unit       = "lilith-seo-rag-retrieval.service"
  type       = "worker"
  depends_on = ["seo.redis"]
  tags       = ["seo"]
}

service "seo.classifier" {
  unit       = "lilith-seo-classifier.service"
  type       = "worker"
  depends_on = ["seo.rag-retrieval"]
  tags       = ["seo"]
  health "exec" {
    command = ["/usr/local/bin/classifier-ping", "--quick"]
  }
}

plan "platform" {
  max_parallel = 2
  on_failure   = "continue"
}

notify "webhook" "ops" {
  url              = "https://hooks.example.com/rollout"
  events           = ["RUN_FAILED", "ROLLBACK_FAILED"]
  headers_from_env = { Authorization = "OPS_TOKEN" }
  timeout          = "3s"
}

notify "slack" "deploys" {
  url_from_env = "SLACK_WEBHOOK_URL"
}

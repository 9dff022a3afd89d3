include = ["inventory/*.hcl", "pipelines.hcl", "inventory/sso.hcl"]

variable "region" {
  default     = "eu"
  description = "Where the platform runs."
}

variable "replicas" {
  default = 2
}

variable "canary" {
  default = false
}

variable "owner" {}

defaults {
  health_timeout  = "30s"
  health_retries  = 3
  health_interval = "1s"
  events_log      = "/var/log/rollout/${var.region}/events.jsonl"
}

service "sso.api" {
  unit        = "lilith-sso-api.service"
  type        = "api"
  depends_on  = ["sso.postgresql", "sso.redis"]
  working_dir = "/var/www/lilith/codebase/features/sso/backend-api"
  tags        = ["core", var.region]
  meta        = { owner = var.owner, replicas = var.replicas }
  health "http" {
    url           = "http://localhost:3001/health"
    expect_status = 204
    timeout       = "30s"
    retries       = 3
  }
}

plan "infra-only" {
  select       = { types = ["infra"], tags = ["core"] }
  max_parallel = 1
  on_failure   = "continue"
  max_failures = 2
  batch {
    types           = ["api"]
    max_unavailable = var.replicas
  }
  batch {
    tags = ["edge"]
  }
}

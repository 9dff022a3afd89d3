pipeline "api" {
  step "restart" "restart" {}
}

service "sso.api" {
  unit = "sso-api.service"
  type = "api"
}

service "sso.redis" {
  unit = "redis.service"
  type = "infra"
}

pipeline "default" {
  step "restart" "restart" {}
}

service "sso.api" {
  unit = "sso-api.service"
}

service "sso.redis" {
  unit = "redis.service"
}

# Two independent problems: both must be reported.
pipeline "api" {
  step "health_check" "precheck" {}
  step "restart" "restart" {}
}

service "sso.api" {
  unit       = "lilith-sso-api.service"
  type       = "api"
  depends_on = ["sso.postgress"]
}

service "sso.postgresql" {
  unit = "lilith-sso-postgresql"
  type = "api"
}

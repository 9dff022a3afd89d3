pipeline "api" {
  step "restart" "restart" {}
}

service "sso.api" {
  unit     = "sso-api.service"
  pipeline = "apii"
}

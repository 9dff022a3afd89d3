pipeline "default" {
  step "restart" "restart" {}
}

service "sso.api" {
  unit       = "sso-api.service"
  depends_on = ["sso.api"]
}

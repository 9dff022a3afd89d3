pipeline "default" {
  step "restart" "restart" {}
}

service "sso.postgresql" {
  unit = "postgresql.service"
}

service "sso.api" {
  unit       = "sso-api.service"
  depends_on = ["sso.postgresq"]
}

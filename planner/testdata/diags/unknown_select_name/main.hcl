pipeline "default" {
  step "restart" "restart" {}
}

service "sso.api" {
  unit = "sso-api.service"
}

plan "apis" {
  select = { names = ["sso.apii"] }
}

pipeline "default" {
  step "restart" "restart" {}
}

service "sso.api" {
  unit = "sso-api.service"
}

plan "infra-only" {
  select = { names = ["sso.api"] }
}

plan "apis" {}

service "api" {
  unit = "api.service"
}

service "api" {
  unit = "api-v2.service"
}

pipeline "default" {
  step "restart" "restart" {}
  step "health_check" "restart" {}
}

service "sso.api" {
  unit = "sso-api.service"
}

plan "all" {
  max_parallel = 2
}

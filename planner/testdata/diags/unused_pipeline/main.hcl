pipeline "default" {
  step "restart" "restart" {}
}

pipeline "workers" {
  step "restart" "restart" {}
}

service "a" {
  unit = "a.service"
}

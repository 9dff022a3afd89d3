host "app1" {
  address = "10.0.3.17"
}

host "spare" {
  address = "10.0.3.99"
}

pipeline "default" {
  step "restart" "restart" {}
}

service "api" {
  unit  = "api.service"
  hosts = ["app1"]
}

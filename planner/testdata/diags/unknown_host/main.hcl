host "app1" {
  address = "10.0.3.17"
}

pipeline "default" {
  step "restart" "restart" {}
}

service "api" {
  unit  = "api.service"
  hosts = ["app1", "ap2"]
}

service "web" {
  unit      = "web.service"
  host_tags = ["us"]
}

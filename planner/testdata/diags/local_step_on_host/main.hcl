host "app1" {
  address = "10.0.3.17"
}

host "app2" {
  address = "10.0.3.18"
}

pipeline "default" {
  step "local_only" "lb" {}
  step "restart" "restart" {}
}

service "api" {
  unit  = "api.service"
  hosts = ["app1", "app2"]
}

service "cron" {
  unit = "cron.service"
}

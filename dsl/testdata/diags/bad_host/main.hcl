host "app1" {
  address     = "-oProxyCommand=sh"
  port        = 70000
  systemd_bus = "/run/user/1000/bus"
}

host "app1" {
  address = "10.0.3.18"
}

host "bad name" {
  address = "10.0.3.19"
}

service "api" {
  unit            = "api.service"
  hosts           = ["app1"]
  serial          = [0, "25%"]
  max_unavailable = "150%"
}

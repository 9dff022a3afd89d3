defaults {
  health_timeout = "30"
}

service "api" {
  unit = "api.service"
  health "systemd" {
    interval = "-1s"
  }
}

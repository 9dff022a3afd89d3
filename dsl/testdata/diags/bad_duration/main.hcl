# A zero duration or retry count is refused, not replaced at run time by a
# default the plan does not show.
defaults {
  health_timeout  = "30"
  health_interval = "0s"
  health_retries  = 0
}

service "api" {
  unit = "api.service"
  health "systemd" {
    interval = "-1s"
    timeout  = "0s"
    retries  = 0
  }
}

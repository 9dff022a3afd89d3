service "api" {
  unit = "api.service"
}

notify "webhook" "ops" {
  url     = "ftp://hooks.example.com/rollout"
  events  = ["RUN_FAILD"]
  headers = { Authorization = "Bearer s3cret" }
}

notify "slack" "deploys" {
  url              = "https://user:pw@hooks.example.com/x"
  headers_from_env = { Authorization = "OPS_TOKEN" }
}

notify "webhook" "audit" {
  url_from_env     = "https://hooks.example.com/audit"
  headers_from_env = { "Bad Header" = "TOKEN" }
}

notify "pagerduty" "oncall" {
  url = "https://events.example.com"
}

notify "webhook" "ops" {
  url = "https://hooks.example.com/again"
}

pipeline "default" {
  step "restart" "restart" {}
}

service "api" {
  unit      = "api@.service"
  instances = ["1", "2", "3"]
  canary {
    count = 3
  }
}

service "web" {
  unit      = "web@.service"
  instances = ["1", "2", "3", "4"]
  canary {
    count = "100%"
  }
}

service "db" {
  unit = "postgresql.service"
  canary {
    observe = "1m"
  }
}

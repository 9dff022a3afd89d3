host "app1" {
  address = "10.0.3.17"
}

host "app2" {
  address = "10.0.3.18"
}

pipeline "default" {
  step "restart" "restart" {}
  step "health_check" "verify" {}
}

pipeline "lb" {
  step "exec" "drain" {
    command          = ["lbctl", "drain", "api/${service.instance}", "--port", "${service.port}"]
    rollback_command = ["lbctl", "ready", "api/${service.instance}"]
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}

service "db" {
  unit = "postgresql.service"
}

# Three instances of a template unit where rollout runs, one at a time
# (the default for instances), the first one a canary.
service "api" {
  unit       = "api@.service"
  instances  = ["1", "2", "3"]
  port       = 3000 + service.instance_index
  pipeline   = "lb"
  depends_on = ["db"]
  health "http" {
    url = "http://127.0.0.1:${service.port}/health"
  }
  canary {
    count         = 1
    observe       = "30s"
    interval      = "5s"
    auto_promote  = false
    failure_limit = 1
    analysis "http" {
      url       = "http://127.0.0.1:${service.port}/metrics"
      json_path = "errors.rate"
      max       = 0.01
    }
    analysis "http" {
      url           = "http://127.0.0.1:9090/api/v1/alerts"
      expect_status = 200
    }
    analysis "exec" {
      command = ["check-errors", "--instance", service.instance]
    }
  }
}

# Two instances on every host: four in all, two at a time.
service "worker" {
  unit            = "worker@.service"
  instances       = 2
  hosts           = ["app1", "app2"]
  max_unavailable = 2
  depends_on      = ["api"]
  port            = { "1" = 7001, "2" = 7002 }
  health "tcp" {
    address = "${host.address}:${service.port}"
  }
}

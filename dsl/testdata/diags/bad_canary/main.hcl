pipeline "default" {
  step "restart" "restart" {}
}

service "api" {
  unit      = "api@.service"
  instances = 3
  port      = 3000 + service.instance_index
  canary {
    count    = 0
    observe  = "10s"
    interval = "30s"
    analysis "http" {
      expect_status = 200
    }
    analysis "http" {
      url       = "http://127.0.0.1:${service.port}/metrics"
      json_path = "errors.rate"
    }
    analysis "exec" {
      url = "http://127.0.0.1:9090/"
      command = ["check"]
    }
    analysis "grpc" {
    }
  }
}

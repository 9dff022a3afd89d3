# Blue-green steps that cannot work; plan validate refuses each.

pipeline "one-color" {
  step "blue_green" "switch" {
    colors = {
      blue = { address = "127.0.0.1:8001" }
    }
    nginx = { file = "/etc/nginx/conf.d/api.conf" }
  }
}

pipeline "no-balancer" {
  step "blue_green" "switch" {
    colors = {
      blue  = { address = "127.0.0.1:8001" }
      green = { address = "127.0.0.1:8002" }
    }
  }
}

pipeline "same-port" {
  step "blue_green" "switch" {
    colors = {
      blue  = { address = "127.0.0.1:8001" }
      green = { address = "127.0.0.1:8001" }
    }
    haproxy = { socket = "/run/haproxy/admin.sock", backend = "api" }
  }
}

pipeline "deploy-nowhere" {
  step "blue_green" "switch" {
    colors = {
      blue  = { address = "127.0.0.1:8001", dir = "/srv/api/blue" }
      green = { address = "127.0.0.1:8002" }
    }
    from  = "/srv/builds/api"
    nginx = { file = "conf.d/api.conf" }
  }
}

service "a" {
  unit     = "a@.service"
  colors   = ["blue", "green"]
  pipeline = "one-color"
}

service "b" {
  unit     = "b@.service"
  colors   = ["blue", "green"]
  pipeline = "no-balancer"
}

service "c" {
  unit     = "c@.service"
  colors   = ["blue", "green"]
  pipeline = "same-port"
}

service "d" {
  unit     = "d@.service"
  colors   = ["blue", "green"]
  pipeline = "deploy-nowhere"
}

service "e" {
  unit     = "e.service"
  colors   = ["blue", "blue"]
  pipeline = "no-balancer"
}

pipeline "good" {
  step "blue_green" "switch" {
    colors = {
      blue  = { address = "127.0.0.1:8001" }
      green = { address = "127.0.0.1:8002" }
    }
    nginx = { file = "/etc/nginx/conf.d/api.conf" }
  }
}

service "f" {
  unit     = "f@.service"
  colors   = ["blue", "red"]
  pipeline = "good"
}

plan "nonsense" {}

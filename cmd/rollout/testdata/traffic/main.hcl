# Load balancer steps that take instances out of traffic and never put them
# back: plan validate refuses both pipelines.
pipeline "haproxy" {
  step "haproxy_drain" "drain" {
    socket  = "/run/haproxy/admin.sock"
    backend = "api"
    server  = service.meta.lb_server
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
  # Puts back a different server: s1's drain is still open.
  step "haproxy_ready" "ready" {
    socket  = "/run/haproxy/admin.sock"
    backend = "api"
    server  = "other"
  }
}

pipeline "nginx" {
  step "nginx_upstream" "out" {
    file   = "/etc/nginx/conf.d/api.conf"
    server = "127.0.0.1:8003"
    state  = "down"
  }
  step "restart" "restart" {}
}

pipeline "balanced" {
  step "nginx_upstream" "out" {
    file   = "/etc/nginx/conf.d/api.conf"
    server = "127.0.0.1:8004"
    state  = "down"
  }
  step "restart" "restart" {}
  step "nginx_upstream" "in" {
    file   = "/etc/nginx/conf.d/api.conf"
    server = "127.0.0.1:8004"
    state  = "up"
  }
}

service "api.1" {
  unit     = "api@1.service"
  pipeline = "haproxy"
  meta     = { lb_server = "s1" }
}

service "api.2" {
  unit     = "api@2.service"
  pipeline = "haproxy"
  meta     = { lb_server = "s2" }
}

service "api.3" {
  unit     = "api@3.service"
  pipeline = "nginx"
}

service "api.4" {
  unit     = "api@4.service"
  pipeline = "balanced"
}

host "app1" {
  address = "10.0.3.17"
  user    = "deploy"
  tags    = ["eu", "db"]
}

host "app2" {
  address     = "app2.internal"
  port        = 2222
  systemd_bus = "unix:path=/run/user/1000/bus"
  tags        = ["eu"]
}

host "app3" {
  address  = "app3"
  ssh_args = ["-o", "ProxyJump=bastion"]
  tags     = ["eu"]
}

pipeline "default" {
  step "rsync" "deploy" {
    if   = run.deploy
    from = "${run.deploy_path}/${service.name}"
    to   = "/srv/${service.name}"
  }
  step "restart" "restart" {}
  step "health_check" "verify" {}
}

service "db" {
  unit  = "postgresql.service"
  hosts = ["app1"]
}

service "api" {
  unit            = "api.service"
  host_tags       = ["eu"]
  depends_on      = ["db"]
  serial          = [1, "50%"]
  max_unavailable = 1
  health "http" {
    url = "http://${host.address}:8080/health"
  }
}

service "web" {
  unit       = "web.service"
  hosts      = ["app3", "app2"]
  depends_on = ["api"]
}

service "cron" {
  unit = "cron.service"
}

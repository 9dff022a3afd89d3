service "edge.nginx" {
  unit       = "nginx.service"
  type       = "edge"
  depends_on = concat(["sso.api"], [])
  health "systemd" {}
}

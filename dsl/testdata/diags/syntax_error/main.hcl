include = ["bad.hcl", "ok.hcl"]

service "api" {
  unit = "api.service"
}

include = [
  "inventory/*.hcl",
  "pipelines.hcl",
]

service "api" {
  unit = "api.service"
}

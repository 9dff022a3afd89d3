service "api" {
  unit = "api.service"
  tags = "core"
  health "http" {
    url     = "http://localhost:3001/health"
    retries = "three"
  }
}

service "api" {
  unit = "api.service"
  health "http" {
    url = "localhost:3001/health"
  }
}

service "web" {
  unit = "web.service"
  health "http" {
    url = "http:///health"
  }
}

service "api" {
  unit = "api.service"
  health "tcp" {
    url = "http://localhost:3001/health"
  }
}

service "job" {
  unit = "job.service"
  health "exec" {
    command = []
  }
}

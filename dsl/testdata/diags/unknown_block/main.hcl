servce "api" {
  unit = "api.service"
}

service "db" {
  unit = "postgresql.service"
  healthcheck "tcp" {
    address = "localhost:5432"
  }
}

service "api" {
  unit = "api.service"
  health "grpc" {
    address = "localhost:9000"
  }
}

service "db" {
  unit = "postgresql.service"
  health "systemd" {}
  health "tcp" {
    address = "localhost:5432"
  }
}

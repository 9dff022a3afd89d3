service "db" {
  unit = "postgresql.service"
  health "tcp" {
    address = "localhost"
  }
}

service "cache" {
  unit = "redis.service"
  health "tcp" {
    address = "localhost:"
  }
}

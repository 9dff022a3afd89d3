service "sso.postgresql" {
  unit = "postgresql@15-main.service"
  type = "infra"
  tags = ["core", "db"]
  health "tcp" {
    address  = "localhost:5432"
    interval = "2s"
  }
}

service "sso.redis" {
  unit     = "redis-server.service"
  type     = "infra"
  pipeline = "default"
  health "exec" {
    command = ["redis-cli", "ping"]
  }
}

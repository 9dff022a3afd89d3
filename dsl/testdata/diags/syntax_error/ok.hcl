service "db" {
  unit  = "postgresql.service"
  owner = "ops"
}

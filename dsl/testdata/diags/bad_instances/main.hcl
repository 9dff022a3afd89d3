pipeline "default" {
  step "restart" "restart" {}
}

# instances on a unit that is not a template
service "api" {
  unit      = "api.service"
  instances = ["1", "2"]
}

# a template unit without instances
service "web" {
  unit = "web@.service"
}

# a repeated instance, and a name systemd does not allow
service "worker" {
  unit      = "worker@.service"
  instances = ["a", "b", "a", "c d"]
}

# a port map without an entry for one instance
service "queue" {
  unit      = "queue@.service"
  instances = 2
  port      = { "1" = 5001 }
}

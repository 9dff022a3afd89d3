# Several problems in one step and one health block: validate must print
# them in the same order on every run (source order), in every format.
plan "many" {}

pipeline "default" {
  # Evaluated once for every service.
  step "exec" "migrate" {
    command          = "not-a-list"
    env              = ["x"]
    rollback_command = { a = 1 }
    dir              = []
  }
  # Evaluated per service (it reads service.name).
  step "exec" "notify" {
    command          = service.name
    env              = [service.name]
    rollback_command = { a = service.name }
    dir              = [service.name]
  }
}

service "a" {
  unit = "a.service"
  health "http" {
    url      = "ftp://x"
    retries  = -1
    interval = "soon"
  }
}

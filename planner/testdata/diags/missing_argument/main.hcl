pipeline "default" {
  step "exec" "migrate" {
    dir = "/srv"
  }
}

service "a" {
  unit = "a.service"
}

service "b" {
  unit = "b.service"
}

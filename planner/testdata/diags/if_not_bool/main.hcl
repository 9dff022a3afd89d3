pipeline "default" {
  step "restart" "restart" {
    if = "yes"
  }
  step "stabilize" "settle" {
    if       = null
    duration = "10s"
  }
}

service "a" {
  unit = "a.service"
}

pipeline "default" {
  step "restart" "restart" {}
  step "helth_check" "verify" {}
}

service "a" {
  unit = "a.service"
}

service "b" {
  unit = "b.service"
}

service "c" {
  unit = "c.service"
}

pipeline "default" {
  step "restart" "restart" {}
}

service "a" {
  unit       = "a.service"
  depends_on = ["b"]
}

service "b" {
  unit       = "b.service"
  depends_on = ["c"]
}

service "c" {
  unit       = "c.service"
  depends_on = ["a"]
}

service "d" {
  unit       = "d.service"
  depends_on = ["a"]
}

pipeline "default" {
  step "restart" "restart" {}
}

service "a" {
  unit = "a.service"
}

plan "one" {}

plan "two" {}

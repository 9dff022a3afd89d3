service "api" {
  unit = "api"
}

service "web" {
  unit = "my web.service"
}

pipeline "default" {
  step "exec" "migrate" {
    command = "npx prisma migrate deploy"
  }
  step "stabilize" "settle" {
    duration = "thirty seconds"
  }
  step "restart" "restart" {
    signal = "HUP"
  }
}

service "a" {
  unit = "a.service"
}

service "b" {
  unit = "b.service"
}

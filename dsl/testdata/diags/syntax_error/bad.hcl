service "worker" {
  unit = "worker.service"
}

service "cron" {
  unit = 
}

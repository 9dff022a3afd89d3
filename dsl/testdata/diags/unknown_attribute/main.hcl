service "api" {
  unit       = "api.service"
  dependson  = ["db"]
}

plan "all" {
  maxparallel = 2
}

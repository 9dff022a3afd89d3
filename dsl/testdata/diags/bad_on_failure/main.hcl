plan "careful" {
  on_failure   = "stop"
  max_parallel = -1
}

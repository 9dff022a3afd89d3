plan "core" {
  select = { name = ["api"], tags = ["core"] }
  batch {
    max_unavailable = 0
  }
}

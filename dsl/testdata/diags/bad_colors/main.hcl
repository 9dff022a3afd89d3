# colors on a unit that is not a template
service "a" {
  unit   = "a.service"
  colors = ["blue", "green"]
}

# colors together with instances
service "b" {
  unit      = "b@.service"
  instances = ["1", "2"]
  colors    = ["blue", "green"]
}

# three colors
service "c" {
  unit   = "c@.service"
  colors = ["blue", "green", "red"]
}

# one color twice
service "d" {
  unit   = "d@.service"
  colors = ["blue", "blue"]
}

plan "p" {}

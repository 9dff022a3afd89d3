variable "region" {
  default = "eu"
}

variable "region" {
  default = "us"
}

defaults {
  health_retries = 3
}

defaults {
  health_retries = 5
}

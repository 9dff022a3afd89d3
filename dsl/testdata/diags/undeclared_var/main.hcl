variable "region" {
  default = "eu"
}

variable "replicas" {
  default = 2
}

service "api" {
  unit = "api-${var.region}.service"
}

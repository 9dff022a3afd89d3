variable "owner" {
  description = "Team that owns the platform."
}

variable "region" {}

service "api" {
  unit = "api-${var.region}.service"
  meta = { owner = var.owner }
}

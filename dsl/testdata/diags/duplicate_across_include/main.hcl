include = ["inventory/*.hcl"]

service "sso.api" {
  unit = "sso-api.service"
}

plan "all" {}

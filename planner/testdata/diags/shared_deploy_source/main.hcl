# --deploy --deploy-path DIR with a plan of three services whose pipeline
# deploys from run.deploy_path: one release would land in all three.
pipeline "api" {
  step "rsync" "deploy" {
    if   = run.deploy
    from = run.deploy_path
    to   = service.working_dir
  }
  step "restart" "restart" {}
}

service "sso.api" {
  unit        = "sso-api.service"
  type        = "api"
  working_dir = "/srv/sso"
}

service "merchant.api" {
  unit        = "merchant-api.service"
  type        = "api"
  working_dir = "/srv/merchant"
}

service "profile.api" {
  unit        = "profile-api.service"
  type        = "api"
  working_dir = "/srv/sso"
}

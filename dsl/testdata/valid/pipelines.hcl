pipeline "api" {
  step "health_check" "precheck" {}
  step "rsync" "deploy" {
    if   = run.deploy
    from = run.deploy_path
    to   = service.working_dir
  }
  step "exec" "migrate" {
    if      = !run.skip_migrations
    command = ["npx", "prisma", "migrate", "deploy"]
    dir     = service.working_dir
    timeout = "5m"
    env {
      NODE_ENV = "production"
    }
  }
  step "reload_or_restart" "restart" {}
}

pipeline "default" {
  step "restart" "restart" {}
}

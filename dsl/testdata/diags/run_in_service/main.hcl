service "api" {
  unit        = "api.service"
  working_dir = run.deploy_path
  tags        = [service.name]
}

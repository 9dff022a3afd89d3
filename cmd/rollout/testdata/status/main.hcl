# rollout status: one service of each kind of answer.
variable "dir" { default = "/nonexistent" }

defaults {
  health_timeout = "5s"
}

pipeline "default" {
  step "restart" "restart" {}
}

service "st.db" {
  unit = "st-db.service"
  health "systemd" {}
}

service "st.api" {
  unit        = "st-api.service"
  working_dir = "${var.dir}/api/current"
  depends_on  = ["st.db"]
  health "exec" { command = ["true"] }
}

service "st.worker" {
  unit       = "st-worker.service"
  depends_on = ["st.db"]
  health "systemd" {}
}

service "st.cache" {
  unit = "st-cache.service"
  health "exec" { command = ["false"] }
}

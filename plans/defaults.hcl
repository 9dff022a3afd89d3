# Shared settings for every canned plan in this folder. Included by the root
# plan files (platform.hcl, infra-only.hcl, ...); it holds no plan block.

# Where health URLs point. Override per run, e.g. against a staging box:
#   rollout run plans/platform.hcl --var host=10.0.3.17
variable "host" {
  default     = "localhost"
  description = "Host that HTTP health checks connect to."
}

# The checkout every feature's code lives under; working_dir of each service
# is built from it, so a staging tree needs only --var codebase=/srv/lilith-staging.
variable "codebase" {
  default     = "/var/www/lilith/codebase"
  description = "Root of the Lilith monorepo checkout on the host."
}

defaults {
  # As the reference: one attempt may take 30s, three attempts, 1s apart.
  health_timeout  = "30s"
  health_retries  = 3
  health_interval = "1s"
  events_log      = "/var/log/rollout/events.jsonl"
}

# infra-only: every PostgreSQL, Redis and MinIO (and the search and
# analytics stores), one at a time, stopping at the first failure (~5 minutes).
# Nothing that depends on them is restarted: services outside the selection
# are never touched, they only order the ones inside it.
#
#   rollout plan show plans/infra-only.hcl
#   rollout run plans/infra-only.hcl --dry-run
#   rollout run plans/infra-only.hcl
#   rollout run plans/infra-only.hcl --service sso.postgresql

include = ["defaults.hcl", "pipelines.hcl", "inventory/*.hcl"]

plan "infra-only" {
  select       = { types = ["infra"] }
  max_parallel = 1
  on_failure   = "abort"
}

# platform: the whole Lilith platform (every service in inventory/) in
# dependency order, one at a time, stopping at the first failure. The
# equivalent of the reference's `pnpm restart:rolling` (~28 minutes).
#
#   rollout plan show plans/platform.hcl                   # order, waves, resolved steps
#   rollout run plans/platform.hcl --dry-run               # pnpm restart:rolling:dry
#   rollout run plans/platform.hcl                         # pnpm restart:rolling
#   rollout run plans/platform.hcl --service sso.api       # one service (repeatable)
#   rollout run plans/platform.hcl --service sso.api --force
#   rollout run plans/platform.hcl --service sso.api --deploy --deploy-path /tmp/deploy/sso-api
#   rollout run plans/platform.hcl --service sso.api --skip-migrations

# inventory/*.hcl is read in name order and a one-at-a-time run breaks ties
# by declaration order, so the numbered files make the run go infra, core
# APIs, ML, APIs, workers, frontends, as the reference does.
include = ["defaults.hcl", "pipelines.hcl", "inventory/*.hcl"]

plan "platform" {
  # No select: every service.
  max_parallel = 1
  on_failure   = "abort"
}

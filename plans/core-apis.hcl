# core-apis: the APIs every other feature calls (SSO, Merchant, Profile,
# Marketplace, Payments: the services tagged "core"), in dependency order,
# one at a time, stopping at the first failure (~7 minutes). Their
# databases and the services that call them are not restarted.
#
#   rollout plan show plans/core-apis.hcl
#   rollout run plans/core-apis.hcl --dry-run
#   rollout run plans/core-apis.hcl
#   rollout run plans/core-apis.hcl --skip-migrations      # no schema changes in this release
#   rollout run plans/core-apis.hcl --service merchant.api --deploy --deploy-path /tmp/deploy/merchant-api

include = ["defaults.hcl", "pipelines.hcl", "inventory/*.hcl"]

plan "core-apis" {
  select       = { tags = ["core"] }
  max_parallel = 1
  on_failure   = "abort"
}

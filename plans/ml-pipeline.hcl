# ml-pipeline: every ML service (type "ml": the SEO pipeline, search,
# recommendations, moderation, fraud scoring, ...) and nothing else (~10
# minutes). The stores they depend on are not restarted; they only order the
# selection (seo.rag-retrieval before seo.classifier).
#
# Two at a time, but at most one GPU service at a time: a GPU model reloading
# holds two copies in memory until the old process exits. A failed model does
# not stop the others (on_failure "continue" skips only what depends on it);
# after two failures the run stops.
#
#   rollout plan show plans/ml-pipeline.hcl
#   rollout run plans/ml-pipeline.hcl --dry-run
#   rollout run plans/ml-pipeline.hcl
#   rollout run plans/ml-pipeline.hcl --parallel 1         # strictly one at a time
#   rollout run plans/ml-pipeline.hcl --service seo.classifier --deploy --deploy-path /tmp/deploy/seo-classifier

include = ["defaults.hcl", "pipelines.hcl", "inventory/*.hcl"]

plan "ml-pipeline" {
  select       = { types = ["ml"] }
  max_parallel = 2
  on_failure   = "continue"
  max_failures = 2

  batch {
    tags            = ["gpu"]
    max_unavailable = 1
  }
}

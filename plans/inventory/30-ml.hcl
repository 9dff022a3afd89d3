# ML services: model servers on ports 8001 onwards, GET /health. Most hold a
# model in GPU memory (tag "gpu"); the few CPU models are tagged "cpu".
# Type "ml": the "ml" pipeline, with no migrations, a longer post-restart
# check and a 60s stabilization, or meta.stabilize where a model needs more.
#
# They depend on their feature's stores only; the APIs that call them depend
# on them, so a model is back before its callers restart.

# --- seo --------------------------------------------------------------------

# Reference example 3: seo.redis, then seo.rag-retrieval, then seo.classifier.
service "seo.rag-retrieval" {
  unit        = "lilith-seo-rag-retrieval.service"
  type        = "ml"
  depends_on  = ["seo.redis"]
  working_dir = "${var.codebase}/features/seo/ml/rag-retrieval"
  tags        = ["gpu"]
  meta        = { model = "bge-large-en-v1.5" }

  health "http" {
    url = "http://${var.host}:8001/health"
  }
}

service "seo.classifier" {
  unit        = "lilith-seo-classifier.service"
  type        = "ml"
  depends_on  = ["seo.rag-retrieval"]
  working_dir = "${var.codebase}/features/seo/ml/classifier"
  tags        = ["gpu"]
  meta        = { model = "deberta-v3-seo-intent" }

  health "http" {
    url = "http://${var.host}:8002/health"
  }
}

service "seo.keyword-extractor" {
  unit        = "lilith-seo-keyword-extractor.service"
  type        = "ml"
  depends_on  = ["seo.classifier"]
  working_dir = "${var.codebase}/features/seo/ml/keyword-extractor"
  tags        = ["cpu"]
  meta        = { model = "keybert-mini" }

  health "http" {
    url = "http://${var.host}:8003/health"
  }
}

# An 8B model takes a minute to load and warm its KV cache: settle longer.
service "seo.content-generator" {
  unit        = "lilith-seo-content-generator.service"
  type        = "ml"
  depends_on  = ["seo.rag-retrieval", "seo.minio"]
  working_dir = "${var.codebase}/features/seo/ml/content-generator"
  tags        = ["gpu"]
  meta        = { model = "llama-3.1-8b-instruct", stabilize = "120s" }

  health "http" {
    url = "http://${var.host}:8004/health"
  }
}

# --- search -----------------------------------------------------------------

service "search.embeddings" {
  unit        = "lilith-search-embeddings.service"
  type        = "ml"
  depends_on  = ["search.redis", "search.opensearch"]
  working_dir = "${var.codebase}/features/search/ml/embeddings"
  tags        = ["gpu"]
  meta        = { model = "e5-large-v2" }

  health "http" {
    url = "http://${var.host}:8005/health"
  }
}

service "search.reranker" {
  unit        = "lilith-search-reranker.service"
  type        = "ml"
  depends_on  = ["search.embeddings"]
  working_dir = "${var.codebase}/features/search/ml/reranker"
  tags        = ["gpu"]
  meta        = { model = "bge-reranker-large" }

  health "http" {
    url = "http://${var.host}:8006/health"
  }
}

service "search.query-understanding" {
  unit        = "lilith-search-query-understanding.service"
  type        = "ml"
  depends_on  = ["search.redis"]
  working_dir = "${var.codebase}/features/search/ml/query-understanding"
  tags        = ["cpu"]
  meta        = { model = "distilbert-query-intent" }

  health "http" {
    url = "http://${var.host}:8007/health"
  }
}

# --- marketplace ------------------------------------------------------------

service "marketplace.recommender" {
  unit        = "lilith-marketplace-recommender.service"
  type        = "ml"
  depends_on  = ["marketplace.redis", "marketplace.minio", "search.embeddings"]
  working_dir = "${var.codebase}/features/marketplace/ml/recommender"
  tags        = ["gpu"]
  meta        = { model = "two-tower-recsys" }

  health "http" {
    url = "http://${var.host}:8008/health"
  }
}

# --- catalog ----------------------------------------------------------------

service "catalog.image-tagger" {
  unit        = "lilith-catalog-image-tagger.service"
  type        = "ml"
  depends_on  = ["catalog.redis", "catalog.minio"]
  working_dir = "${var.codebase}/features/catalog/ml/image-tagger"
  tags        = ["gpu"]
  meta        = { model = "clip-vit-l-14" }

  health "http" {
    url = "http://${var.host}:8009/health"
  }
}

service "catalog.attribute-extractor" {
  unit        = "lilith-catalog-attribute-extractor.service"
  type        = "ml"
  depends_on  = ["catalog.redis"]
  working_dir = "${var.codebase}/features/catalog/ml/attribute-extractor"
  tags        = ["gpu"]
  meta        = { model = "qwen2-vl-7b", stabilize = "120s" }

  health "http" {
    url = "http://${var.host}:8010/health"
  }
}

# --- media ------------------------------------------------------------------

service "media.vision-moderation" {
  unit        = "lilith-media-vision-moderation.service"
  type        = "ml"
  depends_on  = ["media.redis", "media.minio"]
  working_dir = "${var.codebase}/features/media/ml/vision-moderation"
  tags        = ["gpu"]
  meta        = { model = "nsfw-vit-base" }

  health "http" {
    url = "http://${var.host}:8011/health"
  }
}

# --- payments ---------------------------------------------------------------

service "payments.fraud-scorer" {
  unit        = "lilith-payments-fraud-scorer.service"
  type        = "ml"
  depends_on  = ["payments.redis"]
  working_dir = "${var.codebase}/features/payments/ml/fraud-scorer"
  tags        = ["cpu"]
  meta        = { model = "xgboost-fraud-v7" }

  health "http" {
    url = "http://${var.host}:8012/health"
  }
}

# --- reviews ----------------------------------------------------------------

service "reviews.sentiment" {
  unit        = "lilith-reviews-sentiment.service"
  type        = "ml"
  depends_on  = ["reviews.redis"]
  working_dir = "${var.codebase}/features/reviews/ml/sentiment"
  tags        = ["gpu"]
  meta        = { model = "roberta-sentiment" }

  health "http" {
    url = "http://${var.host}:8013/health"
  }
}

# --- analytics --------------------------------------------------------------

service "analytics.forecaster" {
  unit        = "lilith-analytics-forecaster.service"
  type        = "ml"
  depends_on  = ["analytics.clickhouse"]
  working_dir = "${var.codebase}/features/analytics/ml/forecaster"
  tags        = ["cpu"]
  meta        = { model = "prophet-demand" }

  health "http" {
    url = "http://${var.host}:8014/health"
  }
}

# --- shipping ---------------------------------------------------------------

service "shipping.eta-predictor" {
  unit        = "lilith-shipping-eta-predictor.service"
  type        = "ml"
  depends_on  = ["shipping.redis"]
  working_dir = "${var.codebase}/features/shipping/ml/eta-predictor"
  tags        = ["cpu"]
  meta        = { model = "lightgbm-eta" }

  health "http" {
    url = "http://${var.host}:8015/health"
  }
}

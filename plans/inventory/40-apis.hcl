# Feature APIs: every other backend API. Type "api", so the "api" pipeline
# (migrations included); ports continue from the core APIs (3006 onwards).

service "notifications.api" {
  unit        = "lilith-notifications-api.service"
  type        = "api"
  depends_on  = ["sso.api", "notifications.postgresql", "notifications.redis"]
  working_dir = "${var.codebase}/features/notifications/backend-api"
  meta        = { team = "engagement" }

  health "http" {
    url = "http://${var.host}:3006/health"
  }
}

service "search.api" {
  unit = "lilith-search-api.service"
  type = "api"
  depends_on = [
    "sso.api",
    "search.postgresql", "search.redis", "search.opensearch",
    "search.reranker", "search.query-understanding",
  ]
  working_dir = "${var.codebase}/features/search/backend-api"
  meta        = { team = "discovery" }

  health "http" {
    url = "http://${var.host}:3007/health"
  }
}

service "seo.api" {
  unit        = "lilith-seo-api.service"
  type        = "api"
  depends_on  = ["marketplace.api", "seo.postgresql", "seo.redis", "seo.classifier"]
  working_dir = "${var.codebase}/features/seo/backend-api"
  meta        = { team = "growth" }

  health "http" {
    url = "http://${var.host}:3008/health"
  }
}

service "analytics.api" {
  unit = "lilith-analytics-api.service"
  type = "api"
  depends_on = [
    "sso.api",
    "analytics.postgresql", "analytics.redis", "analytics.clickhouse",
  ]
  working_dir = "${var.codebase}/features/analytics/backend-api"
  meta        = { team = "data" }

  health "http" {
    url = "http://${var.host}:3009/health"
  }
}

service "media.api" {
  unit = "lilith-media-api.service"
  type = "api"
  depends_on = [
    "sso.api",
    "media.postgresql", "media.redis", "media.minio",
    "media.vision-moderation",
  ]
  working_dir = "${var.codebase}/features/media/backend-api"
  meta        = { team = "platform" }

  health "http" {
    url = "http://${var.host}:3010/health"
  }
}

service "catalog.api" {
  unit = "lilith-catalog-api.service"
  type = "api"
  depends_on = [
    "merchant.api", "media.api",
    "catalog.postgresql", "catalog.redis", "catalog.minio",
    "catalog.image-tagger",
  ]
  working_dir = "${var.codebase}/features/catalog/backend-api"
  meta        = { team = "marketplace" }

  health "http" {
    url = "http://${var.host}:3011/health"
  }
}

# The deepest API: an order needs the listing, the product and the charge.
service "orders.api" {
  unit = "lilith-orders-api.service"
  type = "api"
  depends_on = [
    "marketplace.api", "catalog.api", "payments.api",
    "orders.postgresql", "orders.redis",
  ]
  working_dir = "${var.codebase}/features/orders/backend-api"
  meta        = { team = "marketplace" }

  health "http" {
    url = "http://${var.host}:3012/health"
  }
}

service "reviews.api" {
  unit = "lilith-reviews-api.service"
  type = "api"
  depends_on = [
    "profile.api",
    "reviews.postgresql", "reviews.redis",
    "reviews.sentiment",
  ]
  working_dir = "${var.codebase}/features/reviews/backend-api"
  meta        = { team = "marketplace" }

  health "http" {
    url = "http://${var.host}:3013/health"
  }
}

service "shipping.api" {
  unit = "lilith-shipping-api.service"
  type = "api"
  depends_on = [
    "merchant.api",
    "shipping.postgresql", "shipping.redis",
    "shipping.eta-predictor",
  ]
  working_dir = "${var.codebase}/features/shipping/backend-api"
  meta        = { team = "logistics" }

  health "http" {
    url = "http://${var.host}:3014/health"
  }
}

# Back office for support staff; shares sso.api's database, whose
# migrations sso.api owns.
service "sso.admin-api" {
  unit        = "lilith-sso-admin-api.service"
  type        = "api"
  depends_on  = ["sso.api"]
  working_dir = "${var.codebase}/features/sso/admin-api"
  tags        = ["internal"]
  meta        = { team = "identity" }

  health "http" {
    url = "http://${var.host}:3015/health"
  }
}

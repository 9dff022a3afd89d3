# Workers: queue consumers with no HTTP endpoint, so their health is systemd's
# is-active. Each depends on its feature's API, whose pipeline migrates the
# database the worker shares; the "worker" pipeline itself runs no migrations.

service "sso.session-reaper" {
  unit        = "lilith-sso-session-reaper.service"
  type        = "worker"
  depends_on  = ["sso.api"]
  working_dir = "${var.codebase}/features/sso/workers/session-reaper"

  health "systemd" {}
}

service "notifications.email-worker" {
  unit        = "lilith-notifications-email-worker.service"
  type        = "worker"
  depends_on  = ["notifications.api"]
  working_dir = "${var.codebase}/features/notifications/workers/email-worker"

  health "systemd" {}
}

service "notifications.push-worker" {
  unit        = "lilith-notifications-push-worker.service"
  type        = "worker"
  depends_on  = ["notifications.api"]
  working_dir = "${var.codebase}/features/notifications/workers/push-worker"

  health "systemd" {}
}

service "notifications.sms-worker" {
  unit        = "lilith-notifications-sms-worker.service"
  type        = "worker"
  depends_on  = ["notifications.api"]
  working_dir = "${var.codebase}/features/notifications/workers/sms-worker"

  health "systemd" {}
}

service "payments.webhook-worker" {
  unit        = "lilith-payments-webhook-worker.service"
  type        = "worker"
  depends_on  = ["payments.api"]
  working_dir = "${var.codebase}/features/payments/workers/webhook-worker"
  tags        = ["pci"]

  health "systemd" {}
}

service "payments.settlement-worker" {
  unit        = "lilith-payments-settlement-worker.service"
  type        = "worker"
  depends_on  = ["payments.api"]
  working_dir = "${var.codebase}/features/payments/workers/settlement-worker"
  tags        = ["pci"]

  health "systemd" {}
}

# Hands paid orders to shipping: both APIs must be on the new version.
service "orders.fulfillment-worker" {
  unit        = "lilith-orders-fulfillment-worker.service"
  type        = "worker"
  depends_on  = ["orders.api", "shipping.api"]
  working_dir = "${var.codebase}/features/orders/workers/fulfillment-worker"

  health "systemd" {}
}

service "orders.invoice-worker" {
  unit        = "lilith-orders-invoice-worker.service"
  type        = "worker"
  depends_on  = ["orders.api", "payments.api"]
  working_dir = "${var.codebase}/features/orders/workers/invoice-worker"

  health "systemd" {}
}

service "media.thumbnail-worker" {
  unit        = "lilith-media-thumbnail-worker.service"
  type        = "worker"
  depends_on  = ["media.api"]
  working_dir = "${var.codebase}/features/media/workers/thumbnail-worker"

  health "systemd" {}
}

# NVENC transcoding: shares the GPUs with the ML services.
service "media.transcode-worker" {
  unit        = "lilith-media-transcode-worker.service"
  type        = "worker"
  depends_on  = ["media.api"]
  working_dir = "${var.codebase}/features/media/workers/transcode-worker"
  tags        = ["gpu"]

  health "systemd" {}
}

service "search.indexer" {
  unit        = "lilith-search-indexer.service"
  type        = "worker"
  depends_on  = ["search.api", "catalog.api"]
  working_dir = "${var.codebase}/features/search/workers/indexer"

  health "systemd" {}
}

service "catalog.import-worker" {
  unit        = "lilith-catalog-import-worker.service"
  type        = "worker"
  depends_on  = ["catalog.api"]
  working_dir = "${var.codebase}/features/catalog/workers/import-worker"

  health "systemd" {}
}

service "analytics.ingest-worker" {
  unit        = "lilith-analytics-ingest-worker.service"
  type        = "worker"
  depends_on  = ["analytics.api"]
  working_dir = "${var.codebase}/features/analytics/workers/ingest-worker"

  health "systemd" {}
}

service "analytics.rollup-worker" {
  unit        = "lilith-analytics-rollup-worker.service"
  type        = "worker"
  depends_on  = ["analytics.api"]
  working_dir = "${var.codebase}/features/analytics/workers/rollup-worker"

  health "systemd" {}
}

service "seo.crawler" {
  unit        = "lilith-seo-crawler.service"
  type        = "worker"
  depends_on  = ["seo.api"]
  working_dir = "${var.codebase}/features/seo/workers/crawler"

  health "systemd" {}
}

service "seo.sitemap-worker" {
  unit        = "lilith-seo-sitemap-worker.service"
  type        = "worker"
  depends_on  = ["seo.api", "catalog.api"]
  working_dir = "${var.codebase}/features/seo/workers/sitemap-worker"

  health "systemd" {}
}

service "shipping.label-worker" {
  unit        = "lilith-shipping-label-worker.service"
  type        = "worker"
  depends_on  = ["shipping.api"]
  working_dir = "${var.codebase}/features/shipping/workers/label-worker"

  health "systemd" {}
}

service "reviews.moderation-worker" {
  unit        = "lilith-reviews-moderation-worker.service"
  type        = "worker"
  depends_on  = ["reviews.api"]
  working_dir = "${var.codebase}/features/reviews/workers/moderation-worker"

  health "systemd" {}
}

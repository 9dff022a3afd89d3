# Infrastructure: every feature's own PostgreSQL and Redis, MinIO where the
# feature stores objects, and the search and analytics stores. All restart
# through the "infra" pipeline (plain restart, no migrations).
#
# As the reference: PostgreSQL, Redis and MinIO are healthy when systemd says
# the unit is active (systemctl is-active). They depend on nothing, so every
# plan restarts them first; a full platform run spends its first ~5 minutes here.

# --- sso --------------------------------------------------------------------

service "sso.postgresql" {
  unit = "lilith-sso-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "sso.redis" {
  unit = "lilith-sso-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# --- merchant ---------------------------------------------------------------

service "merchant.postgresql" {
  unit = "lilith-merchant-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "merchant.redis" {
  unit = "lilith-merchant-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# --- profile ----------------------------------------------------------------

service "profile.postgresql" {
  unit = "lilith-profile-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "profile.redis" {
  unit = "lilith-profile-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# Object store: avatars and KYC documents.
service "profile.minio" {
  unit = "lilith-profile-minio.service"
  type = "infra"
  tags = ["minio"]

  health "systemd" {}
}

# --- marketplace ------------------------------------------------------------

service "marketplace.postgresql" {
  unit = "lilith-marketplace-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "marketplace.redis" {
  unit = "lilith-marketplace-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# Object store: listing images.
service "marketplace.minio" {
  unit = "lilith-marketplace-minio.service"
  type = "infra"
  tags = ["minio"]

  health "systemd" {}
}

# --- payments ---------------------------------------------------------------

service "payments.postgresql" {
  unit = "lilith-payments-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "payments.redis" {
  unit = "lilith-payments-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# --- notifications ----------------------------------------------------------

service "notifications.postgresql" {
  unit = "lilith-notifications-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "notifications.redis" {
  unit = "lilith-notifications-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# --- search -----------------------------------------------------------------

service "search.postgresql" {
  unit = "lilith-search-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "search.redis" {
  unit = "lilith-search-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# The JVM reports active long before it accepts connections, so
# its health is the port, not systemd's state.
service "search.opensearch" {
  unit = "lilith-search-opensearch.service"
  type = "infra"
  tags = ["opensearch"]

  health "tcp" {
    address = "${var.host}:9200"
  }
}

# --- seo --------------------------------------------------------------------

service "seo.postgresql" {
  unit = "lilith-seo-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "seo.redis" {
  unit = "lilith-seo-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# Object store: model weights and crawl snapshots.
service "seo.minio" {
  unit = "lilith-seo-minio.service"
  type = "infra"
  tags = ["minio"]

  health "systemd" {}
}

# --- analytics --------------------------------------------------------------

service "analytics.postgresql" {
  unit = "lilith-analytics-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "analytics.redis" {
  unit = "lilith-analytics-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# Object store: raw event archives.
service "analytics.minio" {
  unit = "lilith-analytics-minio.service"
  type = "infra"
  tags = ["minio"]

  health "systemd" {}
}

# Health is a real query: the server can be up with its tables still loading.
service "analytics.clickhouse" {
  unit = "lilith-analytics-clickhouse.service"
  type = "infra"
  tags = ["clickhouse"]

  health "exec" {
    command = ["clickhouse-client", "--query", "SELECT 1"]
    timeout = "10s"
  }
}

# --- media ------------------------------------------------------------------

service "media.postgresql" {
  unit = "lilith-media-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "media.redis" {
  unit = "lilith-media-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# Object store: uploads and transcodes.
service "media.minio" {
  unit = "lilith-media-minio.service"
  type = "infra"
  tags = ["minio"]

  health "systemd" {}
}

# --- catalog ----------------------------------------------------------------

service "catalog.postgresql" {
  unit = "lilith-catalog-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "catalog.redis" {
  unit = "lilith-catalog-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# Object store: product images and import files.
service "catalog.minio" {
  unit = "lilith-catalog-minio.service"
  type = "infra"
  tags = ["minio"]

  health "systemd" {}
}

# --- orders -----------------------------------------------------------------

service "orders.postgresql" {
  unit = "lilith-orders-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "orders.redis" {
  unit = "lilith-orders-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# --- reviews ----------------------------------------------------------------

service "reviews.postgresql" {
  unit = "lilith-reviews-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "reviews.redis" {
  unit = "lilith-reviews-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

# --- shipping ---------------------------------------------------------------

service "shipping.postgresql" {
  unit = "lilith-shipping-postgresql.service"
  type = "infra"
  tags = ["postgresql"]

  health "systemd" {}
}

service "shipping.redis" {
  unit = "lilith-shipping-redis.service"
  type = "infra"
  tags = ["redis"]

  health "systemd" {}
}

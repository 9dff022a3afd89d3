# Frontends: server-rendered web apps on ports 4001 onwards, tagged "edge".
# Type "web": the "web" pipeline (deploy, reload, verify; no migrations).
# They depend on the APIs they render from, so they restart last.
# Also here: the edge proxy in front of them all.

# Login pages; every other frontend redirects here.
service "sso.web" {
  unit        = "lilith-sso-web.service"
  type        = "web"
  depends_on  = ["sso.api"]
  working_dir = "${var.codebase}/features/sso/frontend"
  tags        = ["edge"]

  health "http" {
    url = "http://${var.host}:4001/health"
  }
}

service "profile.web" {
  unit        = "lilith-profile-web.service"
  type        = "web"
  depends_on  = ["profile.api", "media.api"]
  working_dir = "${var.codebase}/features/profile/frontend"
  tags        = ["edge"]

  health "http" {
    url = "http://${var.host}:4002/health"
  }
}

# The storefront: last to restart, once every API it renders from is back.
service "marketplace.web" {
  unit = "lilith-marketplace-web.service"
  type = "web"
  depends_on = [
    "catalog.api", "search.api", "orders.api", "reviews.api",
    "marketplace.api",
  ]
  working_dir = "${var.codebase}/features/marketplace/frontend"
  tags        = ["edge"]

  health "http" {
    url = "http://${var.host}:4003/health"
  }
}

service "merchant.web" {
  unit        = "lilith-merchant-web.service"
  type        = "web"
  depends_on  = ["merchant.api", "catalog.api", "orders.api", "analytics.api"]
  working_dir = "${var.codebase}/features/merchant/dashboard"
  tags        = ["edge"]

  health "http" {
    url = "http://${var.host}:4004/health"
  }
}

service "analytics.web" {
  unit        = "lilith-analytics-web.service"
  type        = "web"
  depends_on  = ["analytics.api"]
  working_dir = "${var.codebase}/features/analytics/frontend"
  tags        = ["edge"]

  health "http" {
    url = "http://${var.host}:4005/health"
  }
}

# Public parcel tracking pages.
service "shipping.web" {
  unit        = "lilith-shipping-web.service"
  type        = "web"
  depends_on  = ["shipping.api"]
  working_dir = "${var.codebase}/features/shipping/frontend"
  tags        = ["edge"]

  health "http" {
    url = "http://${var.host}:4006/health"
  }
}

service "sso.admin-web" {
  unit        = "lilith-sso-admin-web.service"
  type        = "web"
  depends_on  = ["sso.admin-api"]
  working_dir = "${var.codebase}/features/sso/admin-frontend"
  tags        = ["edge"]

  health "http" {
    url = "http://${var.host}:4007/health"
  }
}

# The TLS-terminating reverse proxy in front of every frontend and API.
# No pipeline is named "proxy", so it runs "default": a graceful reload.
# It depends on nothing: nginx starts with its upstreams down and retries them.
service "edge.nginx" {
  unit = "lilith-edge-nginx.service"
  type = "proxy"
  tags = ["edge"]

  health "http" {
    url = "http://${var.host}:8080/nginx-health"
  }
}

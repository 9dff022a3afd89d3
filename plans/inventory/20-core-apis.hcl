# Core APIs: the services every other feature calls (SSO, Merchant, Profile,
# Marketplace, Payments). Tagged "core"; plans/core-apis.hcl restarts just
# these. Type "api": the "api" pipeline runs `npx prisma migrate deploy` in
# working_dir unless --skip-migrations. Health is GET /health on their port.

# Reference example 1: sso.postgresql and sso.redis restart before sso.api.
# The base of every other API: they all authenticate through it.
service "sso.api" {
  unit        = "lilith-sso-api.service"
  type        = "api"
  depends_on  = ["sso.postgresql", "sso.redis"]
  working_dir = "${var.codebase}/features/sso/backend-api"
  tags        = ["core"]
  meta        = { team = "identity" }

  health "http" {
    url = "http://${var.host}:3001/health"
  }
}

# Reference example 2, exactly as the reference gives it: sso.api, then
# merchant.api, then marketplace.api. The merchant and marketplace stores are
# not listed, as in the reference: a sequential run restarts them earlier
# (inventory files are numbered so infrastructure comes first).
service "merchant.api" {
  unit        = "lilith-merchant-api.service"
  type        = "api"
  depends_on  = ["sso.api"]
  working_dir = "${var.codebase}/features/merchant/backend-api"
  tags        = ["core"]
  meta        = { team = "merchant" }

  health "http" {
    url = "http://${var.host}:3002/health"
  }
}

service "profile.api" {
  unit        = "lilith-profile-api.service"
  type        = "api"
  depends_on  = ["sso.api", "profile.postgresql", "profile.redis", "profile.minio"]
  working_dir = "${var.codebase}/features/profile/backend-api"
  tags        = ["core"]
  meta        = { team = "identity" }

  health "http" {
    url = "http://${var.host}:3003/health"
  }
}

# Reference example 2: depends on sso.api and merchant.api.
service "marketplace.api" {
  unit        = "lilith-marketplace-api.service"
  type        = "api"
  depends_on  = ["sso.api", "merchant.api"]
  working_dir = "${var.codebase}/features/marketplace/backend-api"
  tags        = ["core"]
  meta        = { team = "marketplace" }

  health "http" {
    url = "http://${var.host}:3004/health"
  }
}

# Scores every charge through payments.fraud-scorer, so the model restarts first.
service "payments.api" {
  unit = "lilith-payments-api.service"
  type = "api"
  depends_on = [
    "sso.api", "merchant.api",
    "payments.postgresql", "payments.redis",
    "payments.fraud-scorer",
  ]
  working_dir = "${var.codebase}/features/payments/backend-api"
  tags        = ["core", "pci"]
  meta        = { team = "payments" }

  health "http" {
    url = "http://${var.host}:3005/health"
  }
}

# blue-green-nginx: the Merchant API run as two colors of a template unit
# (lilith-merchant-api@blue.service on port 3021, @green on 3022), each
# running its own code from /var/www/merchant-api/COLOR/current, behind
# nginx. A deploy goes to the idle color, which is started and verified
# while the live one serves; then nginx switches, the new color is observed
# for 30 s, and the old one is stopped 30 s later. A failure at any point
# leaves (or puts) the traffic on the old color (docs/zero-downtime.md).
#
#   rollout plan show plans/blue-green-nginx.hcl
#   rollout run plans/blue-green-nginx.hcl --deploy --deploy-path ./build
#   rollout run plans/blue-green-nginx.hcl          # a restart: the idle color
#                                                   # restarted, then the switch
#
# Which color is live is read from nginx's upstream file (the one it
# includes), never from a file rollout keeps. The file lists both colors,
# the idle one `down`:
#
#   upstream merchant_api {
#       server 127.0.0.1:3021;
#       server 127.0.0.1:3022 down;
#   }
#
# The unit runs from the color's code directory:
#
#   # /etc/systemd/system/lilith-merchant-api@.service
#   [Service]
#   WorkingDirectory=/var/www/merchant-api/%i/current
#   EnvironmentFile=/etc/merchant-api/%i.env    # PORT=3021 or 3022

include = ["defaults.hcl"]

variable "merchant_upstream" {
  default     = "/etc/nginx/conf.d/merchant-api-upstream.conf"
  description = "The nginx upstream file that lists both colors."
}

pipeline "merchant-api-bluegreen" {
  step "blue_green" "switch" {
    colors = {
      blue  = { address = "127.0.0.1:3021", dir = "/var/www/merchant-api/blue" }
      green = { address = "127.0.0.1:3022", dir = "/var/www/merchant-api/green" }
    }
    from   = run.deploy ? run.deploy_path : null
    shared = [".env"]
    nginx  = { file = var.merchant_upstream, upstream = "merchant_api" }
    checks = [{ path = "/health/deep", expect_status = 200 }]

    observe          = "30s"
    scale_down_delay = "30s"
  }
}

service "merchant.api" {
  unit     = "lilith-merchant-api@.service"
  colors   = ["blue", "green"] # two instances that take turns serving
  pipeline = "merchant-api-bluegreen"
  # The service as its clients see it: through nginx.
  health "http" { url = "http://${var.host}/merchant/health" }
}

plan "blue-green-nginx" {}

# How each kind of service is restarted. A service runs the pipeline named by
# its `pipeline` attribute, else the one named after its `type`, else
# "default". Steps run top to bottom; when one fails, the steps already done
# are undone in reverse order (see the rollback column of `rollout plan show`).
#
# Step roots: run.* are this run's CLI flags (--deploy, --deploy-path,
# --skip-migrations, --force, --dry-run); service.* is the service the
# pipeline is applied to. --force drops health_check and stabilize steps.

# Node/Prisma APIs: the reference's full restart flow, steps 1 to 8.
pipeline "api" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}

  step "rsync" "deploy" {
    if   = run.deploy
    from = run.deploy_path
    to   = service.working_dir
    # The host's .env is not in the build; --delete must not remove it.
    exclude = [".env"]
  }
  # Or deploy releases instead of rewriting the code in place: no rsync, a
  # failed restart and `rollout rollback` switch back in one rename (see
  # docs/plan-language.md, "Releases"). Point the service's working_dir
  # (and its unit) at BASE/current and use, in place of the step above:
  #
  #   step "release" "deploy" {
  #     if     = run.deploy
  #     from   = run.deploy_path
  #     shared = [".env"]        # BASE/shared/.env, linked into every release
  #   }

  step "exec" "migrate" {
    if      = !run.skip_migrations
    command = ["npx", "prisma", "migrate", "deploy"]
    dir     = service.working_dir
    timeout = "5m"
  }

  # Reload where the unit supports it (graceful), restart otherwise.
  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" {
    duration = "30s"
  }
}

# PostgreSQL, Redis, MinIO, search and analytics stores. A plain restart:
# their reload only re-reads configuration, which is not what a rolling
# restart is for. No code to deploy and no migrations.
pipeline "infra" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "restart" "restart" {
    timeout = "2m"
  }
  step "health_check" "verify" {}
  step "stabilize" "settle" {
    duration = "30s"
  }
}

# GPU model servers: as an API without migrations. Loading a model into GPU
# memory is slow, so the post-restart check retries longer and the service
# settles for 60s (a service can ask for more with meta.stabilize).
pipeline "ml" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}

  step "rsync" "deploy" {
    if      = run.deploy
    from    = run.deploy_path
    to      = service.working_dir
    exclude = [".env", "models/"]
  }

  step "reload_or_restart" "restart" {
    timeout = "3m"
  }
  step "health_check" "verify" {
    retries  = 10
    interval = "5s"
  }
  step "stabilize" "settle" {
    duration = lookup(service.meta, "stabilize", "60s")
  }
}

# Queue consumers: no HTTP endpoint (health is systemd is-active) and no
# migrations of their own: each depends on its feature's API, whose pipeline
# has already migrated the database by the time the worker restarts.
pipeline "worker" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}

  step "rsync" "deploy" {
    if      = run.deploy
    from    = run.deploy_path
    to      = service.working_dir
    exclude = [".env"]
  }

  # A restart, not a reload: workers pick up code only on a fresh process,
  # and systemd's SIGTERM lets them finish the job in hand.
  step "restart" "restart" {
    timeout = "2m"
  }
  step "health_check" "verify" {}
  step "stabilize" "settle" {
    duration = "30s"
  }
}

# Server-rendered frontends (Next.js): deploy the build, reload, verify.
pipeline "web" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}

  step "rsync" "deploy" {
    if      = run.deploy
    from    = run.deploy_path
    to      = service.working_dir
    exclude = [".env", ".next/cache/"]
  }

  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" {
    duration = "30s"
  }
}

# Anything with a type no pipeline is named after.
pipeline "default" {
  step "health_check" "precheck" {}
  step "backup_unit" "backup" {}
  step "reload_or_restart" "restart" {}
  step "health_check" "verify" {}
  step "stabilize" "settle" {
    duration = "30s"
  }
}

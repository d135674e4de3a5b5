# Names, settings and the source bundles.

# Derived from variables only (no resources, no paths): tests/terraform
# evaluates this block offline with `terraform console` and checks the
# environment it renders against lib/config.py, lib/policy.py and lib/routes.py.
locals {
  names = {
    build_sa      = "${var.name}-build"
    dead_letter   = "${var.name}-jobs-dead-letter"
    events_sa     = "${var.name}-events"
    events_topic  = "${var.name}-events"
    http          = "${var.name}-http"
    jobs_topic    = "${var.name}-jobs"
    page_token    = "${var.name}-page-token-secret"
    source_bucket = coalesce(var.source_bucket_name, "${var.project_id}-${var.name}-sources")
    sweep         = "${var.name}-sweep"
    sweep_topic   = "${var.name}-sweep"
    worker        = "${var.name}-worker"
  }
  labels = merge({ app = var.name }, var.labels)
  services = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtrace.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]

  # Cloud Functions builds the source into /workspace, the working directory
  # of the function; policy.json and surfaces.json are added to the HTTP
  # function's bundle (data.archive_file.http).
  source_root = "/workspace"
  # Optional attributes left out are dropped, not written as null: the policy
  # file takes exactly one of "role" and "permissions".
  policy_json = jsonencode({
    bindings = [for binding in var.policy.bindings : { for key, value in binding : key => value if value != null }]
  })
  surfaces_json = var.surfaces == null ? null : jsonencode(var.surfaces)
  issuers_json = jsonencode({
    for issuer, spec in var.issuers : issuer => { for key, value in spec : key => value if value != null }
  })

  # Telemetry (lib/telemetry.py reads the standard OTEL_* variables): spans to
  # Cloud Trace from the functions that make the traces users follow (the
  # request, the publish, the run); metrics to Cloud Monitoring from all
  # three (the sweep ends operations too). iam.tf grants by the same lists.
  trace_exporting_functions  = ["http", "worker"]
  metric_exporting_functions = ["http", "sweep", "worker"]
  telemetry_environment = {
    for function in ["http", "sweep", "worker"] : function => {
      OTEL_METRICS_EXPORTER   = contains(local.metric_exporting_functions, function) ? "gcp_monitoring" : "none"
      OTEL_SERVICE_NAME       = local.names[function]
      OTEL_TRACES_EXPORTER    = contains(local.trace_exporting_functions, function) ? "gcp_trace" : "none"
      OTEL_TRACES_SAMPLER     = "parentbased_traceidratio"
      OTEL_TRACES_SAMPLER_ARG = tostring(var.trace_sample_ratio)
    }
  }

  # lib/config.py reads these; all three functions run the same main.py.
  environment_common = {
    CANCEL_LISTENER               = tostring(var.cancel_listener)
    FIRESTORE_DEADLINE_SECONDS    = tostring(var.firestore_deadline_seconds)
    GOOGLE_CLOUD_PROJECT          = var.project_id
    HEARTBEAT_SECONDS             = tostring(var.heartbeat_seconds)
    LEASE_SECONDS                 = tostring(var.lease_seconds)
    LOG_LEVEL                     = var.log_level
    OPERATIONS_COLLECTION         = var.collection
    OPERATIONS_EVENTS_TOPIC       = local.names.events_topic
    OPERATIONS_KIND_MODULES       = join(",", var.kind_modules)
    OPERATIONS_TOPIC              = local.names.jobs_topic
    PROGRESS_MIN_INTERVAL_SECONDS = tostring(var.progress_min_interval_seconds)
    RETENTION_DAYS                = tostring(var.retention_days)
    # One gunicorn process per instance (functions-framework's WORKERS):
    # clients, caches and the cancel listeners are shared by its threads.
    WORKERS = "1"
  }
  environment_http = merge(
    local.environment_common,
    local.telemetry_environment.http,
    {
      AUTH_CLOCK_SKEW_SECONDS         = tostring(var.auth_clock_skew_seconds)
      AUTH_HTTP_TIMEOUT_SECONDS       = tostring(var.auth_http_timeout_seconds)
      AUTH_ISSUERS                    = local.issuers_json
      AUTH_KEYS_REFRESH_SECONDS       = tostring(var.auth_keys_refresh_seconds)
      AUTH_MAX_TOKEN_LENGTH           = tostring(var.auth_max_token_length)
      AUTH_MAX_TOKEN_LIFETIME_SECONDS = tostring(var.auth_max_token_lifetime_seconds)
      # Empty disables opaque tokens (lib/config.py).
      AUTH_TOKENINFO_URL     = var.tokeninfo_url == null ? "" : var.tokeninfo_url
      LIST_SCAN_LIMIT        = tostring(var.list_scan_limit)
      MAX_REQUEST_BYTES      = tostring(var.max_request_bytes)
      OPERATIONS_POLICY_FILE = "${local.source_root}/policy.json"
      # As many threads as concurrent requests: a held :wait occupies one.
      THREADS                       = tostring(var.http_function.max_instance_request_concurrency)
      TRUST_FORWARDED_AUTHORIZATION = tostring(var.api_gateway_service_account != null)
      WAIT_MAX_SECONDS              = tostring(var.wait_max_seconds)
    },
    local.surfaces_json == null ? {} : { OPERATIONS_SURFACES_FILE = "${local.source_root}/surfaces.json" },
  )
  environment_worker = merge(local.environment_common, local.telemetry_environment.worker, {
    CANCEL_GRACE_SECONDS  = tostring(var.cancel_grace_seconds)
    MAX_ATTEMPTS          = tostring(var.max_attempts)
    RETRY_BACKOFF_SECONDS = tostring(var.retry_backoff_seconds)
    # A minute under the function's timeout: the job checkpoints, releases its
    # lease and continues in a new invocation before the platform kills it.
    SLICE_SECONDS = tostring(max(var.worker_function.timeout_seconds - 60, var.worker_function.timeout_seconds / 2))
    THREADS       = tostring(var.worker_function.max_instance_request_concurrency)
  })
  environment_sweep = merge(local.environment_common, local.telemetry_environment.sweep, {
    MAX_ATTEMPTS               = tostring(var.max_attempts)
    SWEEP_QUEUED_AFTER_SECONDS = tostring(var.sweep_queued_after_seconds)
    THREADS                    = "1"
  })
}

# The bundle's file list lives in bundle.json, which scripts/package.py
# (make package) reads too.
locals {
  repo_root = abspath("${path.module}/..")
  bundle    = jsondecode(file("${path.module}/bundle.json"))
  bundle_files = sort(setsubtract(
    flatten([for pattern in local.bundle.include : tolist(fileset(local.repo_root, pattern))]),
    flatten([for pattern in local.bundle.exclude : tolist(fileset(local.repo_root, pattern))]),
  ))
}

resource "google_project_service" "enabled" {
  for_each           = var.enable_apis ? toset(local.services) : toset([])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_storage_bucket" "sources" {
  project                     = var.project_id
  name                        = local.names.source_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds only build inputs that Terraform can recreate.
  force_destroy = true
  labels        = local.labels

  depends_on = [google_project_service.enabled]
}

# The code every function runs (worker and sweep deploy exactly this).
data "archive_file" "code" {
  type        = "zip"
  output_path = "${local.repo_root}/build/terraform/${var.name}-code.zip"

  dynamic "source" {
    for_each = local.bundle_files
    content {
      content  = file("${local.repo_root}/${source.value}")
      filename = source.value
    }
  }
}

# The code plus the HTTP function's configuration files: a policy change
# rebuilds the HTTP function only.
data "archive_file" "http" {
  type        = "zip"
  output_path = "${local.repo_root}/build/terraform/${var.name}-http.zip"

  dynamic "source" {
    for_each = local.bundle_files
    content {
      content  = file("${local.repo_root}/${source.value}")
      filename = source.value
    }
  }
  source {
    content  = local.policy_json
    filename = "policy.json"
  }
  dynamic "source" {
    for_each = local.surfaces_json == null ? [] : [local.surfaces_json]
    content {
      content  = source.value
      filename = "surfaces.json"
    }
  }
}

# Object names carry the bundle's hash, so a change in the code (or in the
# policy) is a new object and the functions that use it are rebuilt.
resource "google_storage_bucket_object" "code" {
  bucket       = google_storage_bucket.sources.name
  name         = "${var.name}/code-${data.archive_file.code.output_md5}.zip"
  source       = data.archive_file.code.output_path
  content_type = "application/zip"

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_storage_bucket_object" "http" {
  bucket       = google_storage_bucket.sources.name
  name         = "${var.name}/http-${data.archive_file.http.output_md5}.zip"
  source       = data.archive_file.http.output_path
  content_type = "application/zip"

  lifecycle {
    create_before_destroy = true
  }
}

# Page tokens are signed with one key shared by every instance of the HTTP
# function (lib/pagination.py); generated once unless given. It lives in
# Secret Manager, read by the HTTP function's account only: the function's
# configuration shows a reference, never the key.
resource "random_password" "page_token_secret" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "page_token" {
  project   = var.project_id
  secret_id = local.names.page_token
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "page_token" {
  secret      = google_secret_manager_secret.page_token.id
  secret_data = coalesce(var.page_token_secret, random_password.page_token_secret.result)
}

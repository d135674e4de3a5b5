# The three Cloud Functions (2nd gen) of main.py, and the scheduler that
# drives the sweep. Entry points are the contract names (docs/architecture.md).

resource "google_cloudfunctions2_function" "http" {
  project     = var.project_id
  location    = var.region
  name        = local.names.http
  description = "Operations API: get, list, cancel, delete, wait and jobs.create over HTTPS."
  labels      = local.labels

  build_config {
    runtime         = var.runtime
    entry_point     = "operations_http"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.http.name
      }
    }
  }

  service_config {
    available_cpu                    = var.http_function.available_cpu
    available_memory                 = var.http_function.available_memory
    max_instance_count               = var.http_function.max_instance_count
    min_instance_count               = var.http_function.min_instance_count
    max_instance_request_concurrency = var.http_function.max_instance_request_concurrency
    timeout_seconds                  = var.http_function.timeout_seconds
    ingress_settings                 = var.http_function.ingress_settings
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["http"].email
    environment_variables            = local.environment_http

    secret_environment_variables {
      key        = "PAGE_TOKEN_SECRET"
      project_id = var.project_id
      secret     = google_secret_manager_secret.page_token.secret_id
      version    = google_secret_manager_secret_version.page_token.version
    }
  }

  depends_on = [
    google_project_iam_member.build_builder,
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.http_page_token,
  ]
}

resource "google_cloudfunctions2_function" "worker" {
  project     = var.project_id
  location    = var.region
  name        = local.names.worker
  description = "Runs the job a message on ${local.names.jobs_topic} names; stops when its operation is cancelled."
  labels      = local.labels

  build_config {
    runtime         = var.runtime
    entry_point     = "operations_worker"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.code.name
      }
    }
  }

  service_config {
    available_cpu                    = var.worker_function.available_cpu
    available_memory                 = var.worker_function.available_memory
    max_instance_count               = var.worker_function.max_instance_count
    min_instance_count               = var.worker_function.min_instance_count
    max_instance_request_concurrency = var.worker_function.max_instance_request_concurrency
    timeout_seconds                  = var.worker_function.timeout_seconds
    # Only Eventarc calls it.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.function["worker"].email
    environment_variables          = local.environment_worker
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.jobs.id
    service_account_email = google_service_account.events.email
    # Pub/Sub redelivers a message whose run failed (with backoff), until it
    # is dead-lettered; leases make a duplicate delivery harmless.
    retry_policy = "RETRY_POLICY_RETRY"
  }

  depends_on = [
    google_project_iam_member.build_builder,
    google_project_service.enabled,
  ]
}

resource "google_cloudfunctions2_function" "sweep" {
  project     = var.project_id
  location    = var.region
  name        = local.names.sweep
  description = "Re-queues operations whose worker lease expired and re-publishes queued ones whose message was lost."
  labels      = local.labels

  build_config {
    runtime         = var.runtime
    entry_point     = "operations_sweep"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.code.name
      }
    }
  }

  service_config {
    available_memory = var.sweep_function.available_memory
    # One sweep at a time: two would race to re-publish the same operations.
    max_instance_count               = 1
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    timeout_seconds                  = var.sweep_function.timeout_seconds
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["sweep"].email
    environment_variables            = local.environment_sweep
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.sweep.id
    service_account_email = google_service_account.events.email
    # The next tick sweeps again; a retried tick would only pile up.
    retry_policy = "RETRY_POLICY_DO_NOT_RETRY"
  }

  depends_on = [
    google_project_iam_member.build_builder,
    google_project_service.enabled,
  ]
}

# Cloud Scheduler publishes with its own service agent, whose predefined
# role already allows publishing to topics of the project.
resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = coalesce(var.sweep_function.scheduler_region, var.region)
  name        = local.names.sweep
  description = "Ticks ${local.names.sweep_topic}, which runs ${local.names.sweep}."
  schedule    = var.sweep_function.schedule
  time_zone   = var.sweep_function.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.sweep.id
    data       = base64encode("{}")
  }

  depends_on = [google_project_service.enabled]
}

# Identities and every grant the deployment makes. One runtime service
# account per function, one for the Eventarc triggers, one for the builds;
# each holds only what its code or job calls. No basic roles.

locals {
  # Google-managed; exists once the Pub/Sub API is enabled.
  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_service_account" "function" {
  for_each     = toset(["http", "sweep", "worker"])
  project      = var.project_id
  account_id   = "${var.name}-${each.key}"
  display_name = "${var.name} ${each.key} function"
  description  = "Runtime identity of the ${var.name}-${each.key} Cloud Function."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "events" {
  project      = var.project_id
  account_id   = local.names.events_sa
  display_name = "${var.name} event triggers"
  description  = "Identity Eventarc uses to deliver Pub/Sub messages to the worker and sweep functions."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = local.names.build_sa
  display_name = "${var.name} builds"
  description  = "Cloud Build identity that turns the source bundles into the functions' images."

  depends_on = [google_project_service.enabled]
}

# Every function reads and writes operation documents: transactions, list
# and sweep queries, the worker's cancel listener. Firestore has no
# per-collection IAM; this is its narrowest read/write role.
resource "google_project_iam_member" "function_datastore_user" {
  for_each = google_service_account.function
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = "serviceAccount:${each.value.email}"
}

# Publishing to the jobs topic, and to nothing else: the HTTP function
# queues new jobs, the worker queues continuations, the sweep re-publishes
# lost messages.
resource "google_pubsub_topic_iam_member" "function_jobs_publisher" {
  for_each = google_service_account.function
  project  = var.project_id
  topic    = google_pubsub_topic.jobs.name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${each.value.email}"
}

# Lifecycle events: each function publishes the events of the changes it
# commits (HTTP: cancels; worker: ends; sweep: ends it recovers and events a
# dead process left marked), on the events topic only.
resource "google_pubsub_topic_iam_member" "function_events_publisher" {
  for_each = google_service_account.function
  project  = var.project_id
  topic    = google_pubsub_topic.events.name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${each.value.email}"
}

# Telemetry: span writer for the functions that export traces, metric writer
# for those that export metrics (main.tf, telemetry_environment). Both roles
# exist at project level only; they write, they cannot read.
resource "google_project_iam_member" "function_trace_agent" {
  for_each = toset(local.trace_exporting_functions)
  project  = var.project_id
  role     = "roles/cloudtrace.agent"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_project_iam_member" "function_metric_writer" {
  for_each = toset(local.metric_exporting_functions)
  project  = var.project_id
  role     = "roles/monitoring.metricWriter"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

# The HTTP function signs and checks page tokens: it, and nothing else,
# reads the key (mounted as PAGE_TOKEN_SECRET), on this one secret only.
resource "google_secret_manager_secret_iam_member" "http_page_token" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.page_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function["http"].email}"
}

# Eventarc calls the worker and the sweep as the events account: invoker on
# those two Cloud Run services only (Pub/Sub-sourced triggers need no
# eventarc.eventReceiver).
resource "google_cloud_run_service_iam_member" "events_invoker" {
  for_each = {
    sweep  = google_cloudfunctions2_function.sweep
    worker = google_cloudfunctions2_function.worker
  }
  project  = var.project_id
  location = each.value.location
  service  = each.value.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.events.email}"
}

# Pub/Sub signs the push requests it makes for the triggers with tokens of
# the events account. Service agents created before 2021-04-08 lack this by
# default (Eventarc's roles page); granted on this one account only.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.events.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"
}

# Public by default: every request is authenticated and authorized by the
# function itself (bearer token, scopes, policy). Behind API Gateway only
# the gateway's account may call it.
resource "google_cloud_run_service_iam_member" "http_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.http.location
  service  = google_cloudfunctions2_function.http.name
  role     = "roles/run.invoker"
  member   = var.api_gateway_service_account == null ? "allUsers" : "serviceAccount:${var.api_gateway_service_account}"
}

# Dead-lettering: the Pub/Sub service agent republishes a job that failed
# every delivery attempt (its subscriber grant on the Eventarc subscription
# is made with the dead-letter policy, in pubsub.tf).
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.pubsub_service_agent}"
}

# Builds: Cloud Run Builder is the predefined role for building functions
# (read the staged source, write build logs and the image to Artifact
# Registry). Granted before the functions are created (depends_on there).
resource "google_project_iam_member" "build_builder" {
  project = var.project_id
  role    = "roles/run.builder"
  member  = "serviceAccount:${google_service_account.build.email}"
}

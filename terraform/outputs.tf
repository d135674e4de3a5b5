output "api_url" {
  description = "Base URL of the Operations API (the HTTP function's run.app address): append /v1/... or /v3beta1/...."
  value       = google_cloudfunctions2_function.http.service_config[0].uri
}

output "dead_letter_subscription" {
  description = "Pull subscription holding jobs that failed every delivery attempt."
  value       = google_pubsub_subscription.dead_letter.id
}

output "dead_letter_topic" {
  description = "Dead-letter topic of the worker's trigger."
  value       = google_pubsub_topic.dead_letter.id
}

output "dashboard" {
  description = "Cloud Monitoring dashboard of the operations (created, ended, running, cancel and queue latency, forced cancels, 5xx)."
  value       = google_monitoring_dashboard.operations.id
}

output "events_topic" {
  description = "Pub/Sub topic of the lifecycle events (CANCEL_REQUESTED, DONE); subscribe with message ordering and dedupe on (operation, eventType)."
  value       = google_pubsub_topic.events.id
}

output "firestore_database" {
  description = "Firestore database holding the operations."
  value       = "projects/${var.project_id}/databases/${local.firestore_database}"
}

output "function_names" {
  description = "Cloud Functions by role, e.g. for `gcloud functions logs read`."
  value = {
    http   = google_cloudfunctions2_function.http.name
    sweep  = google_cloudfunctions2_function.sweep.name
    worker = google_cloudfunctions2_function.worker.name
  }
}

output "jobs_topic" {
  description = "Pub/Sub topic the HTTP function publishes jobs to and the worker is triggered by."
  value       = google_pubsub_topic.jobs.id
}

output "service_accounts" {
  description = "Service account emails: runtime identity of each function, the trigger identity and the build identity."
  value = {
    build  = google_service_account.build.email
    events = google_service_account.events.email
    http   = google_service_account.function["http"].email
    sweep  = google_service_account.function["sweep"].email
    worker = google_service_account.function["worker"].email
  }
}

output "source_bucket" {
  description = "Bucket holding the source bundles."
  value       = google_storage_bucket.sources.name
}

output "sweep_topic" {
  description = "Pub/Sub topic the scheduler ticks and the sweep function is triggered by."
  value       = google_pubsub_topic.sweep.id
}

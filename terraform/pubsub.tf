# Topics: jobs (HTTP -> worker), sweep (scheduler -> sweep), the lifecycle
# events (CANCEL_REQUESTED, DONE; README "Observe it") and the jobs'
# dead-letter topic with a subscription that keeps what lands there.

resource "google_pubsub_topic" "jobs" {
  project = var.project_id
  name    = local.names.jobs_topic
  labels  = local.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "sweep" {
  project = var.project_id
  name    = local.names.sweep_topic
  labels  = local.labels

  depends_on = [google_project_service.enabled]
}

# Consumers subscribe to it themselves (with message ordering: the ordering
# key is the operation name) and dedupe on (operation, eventType).
resource "google_pubsub_topic" "events" {
  project = var.project_id
  name    = local.names.events_topic
  labels  = local.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  project = var.project_id
  name    = local.names.dead_letter
  labels  = local.labels

  depends_on = [google_project_service.enabled]
}

# Pull subscription for inspecting and replaying dead-lettered jobs
# (`gcloud pubsub subscriptions pull`); a message stays 7 days.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = local.names.dead_letter
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}

# The worker's trigger reads the jobs topic through a subscription that
# Eventarc creates and owns; neither the Eventarc API nor the provider can
# set its dead-letter policy (hashicorp/terraform-provider-google#17697), so
# it is set with gcloud, as the Pub/Sub documentation does for any existing
# subscription. Re-run on every deployment of the worker: it is idempotent.
resource "terraform_data" "worker_dead_letter" {
  count = var.dead_letter_with_gcloud ? 1 : 0

  triggers_replace = [
    google_cloudfunctions2_function.worker.event_trigger[0].trigger,
    google_cloudfunctions2_function.worker.update_time,
    google_pubsub_topic.dead_letter.id,
    var.dead_letter_max_delivery_attempts,
  ]

  provisioner "local-exec" {
    interpreter = ["/bin/bash", "-c"]
    command     = <<-EOT
      set -euo pipefail
      subscription="$(gcloud eventarc triggers describe "$TRIGGER" --project="$PROJECT" --location="$REGION" --format='value(transport.pubsub.subscription)')"
      if [ -z "$subscription" ]; then
        echo "no Pub/Sub subscription found for Eventarc trigger $TRIGGER" >&2
        exit 1
      fi
      gcloud pubsub subscriptions update "$subscription" --project="$PROJECT" \
        --dead-letter-topic="$DEAD_LETTER_TOPIC" --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
      # Forwarding to the dead-letter topic acknowledges the message on the
      # source subscription: the Pub/Sub service agent must be its subscriber.
      gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --project="$PROJECT" \
        --member="serviceAccount:$PUBSUB_SERVICE_AGENT" --role="roles/pubsub.subscriber" >/dev/null
    EOT
    environment = {
      DEAD_LETTER_TOPIC     = google_pubsub_topic.dead_letter.id
      MAX_DELIVERY_ATTEMPTS = tostring(var.dead_letter_max_delivery_attempts)
      PROJECT               = var.project_id
      PUBSUB_SERVICE_AGENT  = local.pubsub_service_agent
      REGION                = var.region
      TRIGGER               = reverse(split("/", google_cloudfunctions2_function.worker.event_trigger[0].trigger))[0]
    }
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

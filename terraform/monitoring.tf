# Cloud Monitoring: a dashboard of the operations and two alert policies
# (forced cancels, failure rate). The operations.* metrics are written by the
# functions' OpenTelemetry exporter (lib/core/telemetry.py) under
# workload.googleapis.com/; the 5xx rate is Cloud Run's own request_count of
# the HTTP function. Deployments sharing a project share the operations.*
# series.

# Variable-only, like main.tf's: tests/terraform evaluates it offline.
locals {
  metric_prefix = "workload.googleapis.com/operations."
  metric_filter = { for metric in [
    "cancel.ack_latency", "cancel.forced", "cancel.requested", "created", "ended",
    "queue_latency", "run.duration", "running",
  ] : metric => "metric.type=\"workload.googleapis.com/operations.${metric}\"" }

  # Each chart: a title and its lines (metric filter, aligner, reducer, group-by).
  dashboard_charts = [
    {
      title = "Operations created vs ended, by code (per second)"
      lines = [
        { label = "created", filter = local.metric_filter["created"], aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = [] },
        { label = "ended, code $${metric.labels.code}", filter = local.metric_filter["ended"], aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = ["metric.label.code"] },
      ]
    },
    {
      title = "Running now"
      lines = [
        { label = "running", filter = local.metric_filter["running"], aligner = "ALIGN_MEAN", reducer = "REDUCE_SUM", group_by = [] },
      ]
    },
    {
      title = "Cancel acknowledge latency (ms)"
      lines = [
        { label = "p50", filter = local.metric_filter["cancel.ack_latency"], aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", group_by = [] },
        { label = "p99", filter = local.metric_filter["cancel.ack_latency"], aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group_by = [] },
      ]
    },
    {
      title = "Queue latency, created to claimed (ms)"
      lines = [
        { label = "p50", filter = local.metric_filter["queue_latency"], aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", group_by = [] },
        { label = "p99", filter = local.metric_filter["queue_latency"], aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group_by = [] },
      ]
    },
    {
      title = "Cancels requested and forced (per minute)"
      lines = [
        { label = "requested", filter = local.metric_filter["cancel.requested"], aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group_by = [] },
        { label = "forced", filter = local.metric_filter["cancel.forced"], aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group_by = [] },
      ]
    },
    {
      title = "HTTP 5xx responses (per second)"
      lines = [
        { label = "5xx", filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=\"${local.names.http}\" AND metric.label.response_code_class=\"5xx\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = [] },
      ]
    },
  ]

  dashboard = {
    displayName = "${var.name} operations"
    mosaicLayout = {
      columns = 12
      tiles = [for index, chart in local.dashboard_charts : {
        xPos   = (index % 2) * 6
        yPos   = floor(index / 2) * 4
        width  = 6
        height = 4
        widget = {
          title = chart.title
          xyChart = {
            dataSets = [for line in chart.lines : {
              plotType       = "LINE"
              legendTemplate = line.label
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter = line.filter
                  aggregation = {
                    alignmentPeriod    = "60s"
                    perSeriesAligner   = line.aligner
                    crossSeriesReducer = line.reducer
                    groupByFields      = line.group_by
                  }
                }
              }
            }]
          }
        }
      }]
    }
  }

  # A failure: an operation that ended with a code other than OK (0) and
  # CANCELLED (1, a cancel by request).
  failed_filter = "${local.metric_filter["ended"]} AND NOT metric.label.code = one_of(\"0\", \"1\")"
}

resource "google_monitoring_dashboard" "operations" {
  project        = var.project_id
  dashboard_json = jsonencode(local.dashboard)

  depends_on = [google_project_service.enabled]
}

# An alert policy on a metric that was never written is refused; these
# descriptors exist before the first point. Labels: the attributes the code
# records (lib/core/telemetry.py) and the exporter's per-instance opentelemetry_id.
resource "google_monitoring_metric_descriptor" "alerted" {
  for_each = {
    "cancel.forced" = ["kind", "opentelemetry_id"]
    "ended"         = ["code", "kind", "opentelemetry_id"]
  }
  project      = var.project_id
  type         = "${local.metric_prefix}${each.key}"
  display_name = "operations.${each.key}"
  description  = each.key == "ended" ? "Operations that ended, by kind and google.rpc.Code." : "Cancelled operations ended by force after the grace."
  metric_kind  = "CUMULATIVE"
  value_type   = "INT64"
  unit         = "{operation}"

  dynamic "labels" {
    for_each = each.value
    content {
      key        = labels.value
      value_type = "STRING"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "forced_cancels" {
  project               = var.project_id
  display_name          = "${var.name}: cancelled operations ended by force"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "A handler kept running past its cancel grace (CANCEL_GRACE_SECONDS) and the worker ended its operation with CANCEL_FORCED. The worker logs one WARNING per forced end naming where the handler was stuck."
  }

  conditions {
    display_name = "More than ${var.alert_forced_cancels_threshold} forced cancels in ${var.alert_window_seconds}s"
    condition_threshold {
      filter          = local.metric_filter["cancel.forced"]
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_forced_cancels_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.alert_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  depends_on = [google_monitoring_metric_descriptor.alerted]
}

resource "google_monitoring_alert_policy" "failure_rate" {
  project               = var.project_id
  display_name          = "${var.name}: operations failing"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "More than the accepted fraction of the operations that ended failed (any google.rpc.Code but OK and CANCELLED). List them with filter `error.code != 0 AND error.code != 1`."
  }

  conditions {
    display_name = "Failed / ended above ${var.alert_failure_rate_threshold} over ${var.alert_window_seconds}s"
    condition_threshold {
      filter             = local.failed_filter
      denominator_filter = local.metric_filter["ended"]
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_failure_rate_threshold
      duration           = "0s"

      aggregations {
        alignment_period     = "${var.alert_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "${var.alert_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  depends_on = [google_monitoring_metric_descriptor.alerted]
}

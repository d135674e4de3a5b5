# Inputs, alphabetical. The settings the code reads are documented in
# lib/config.py; each variable below names the environment variable it sets.

variable "alert_failure_rate_threshold" {
  description = "Alert when, over alert_window_seconds, more than this fraction of the operations that ended failed (google.rpc.Code other than OK and CANCELLED)."
  type        = number
  default     = 0.1

  validation {
    condition     = var.alert_failure_rate_threshold > 0 && var.alert_failure_rate_threshold <= 1
    error_message = "alert_failure_rate_threshold must be a fraction above 0 and at most 1."
  }
}

variable "alert_forced_cancels_threshold" {
  description = "Alert when more than this many cancelled operations were ended by force (their handler ignored the cancel past its grace) within alert_window_seconds. 0: alert on any."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_forced_cancels_threshold >= 0 && floor(var.alert_forced_cancels_threshold) == var.alert_forced_cancels_threshold
    error_message = "alert_forced_cancels_threshold must be a whole number, 0 or more."
  }
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) the alert policies notify. Empty: the incidents show in the console only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for channel in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", channel))])
    error_message = "Each alert_notification_channels entry must be a channel id such as projects/P/notificationChannels/123."
  }
}

variable "alert_window_seconds" {
  description = "Window over which the alert policies count forced cancels and the failure rate, in seconds."
  type        = number
  default     = 300

  validation {
    condition     = var.alert_window_seconds >= 60 && var.alert_window_seconds <= 86400 && var.alert_window_seconds % 60 == 0
    error_message = "alert_window_seconds must be a whole number of minutes from 60 to 86400."
  }
}

variable "api_gateway_service_account" {
  description = <<-EOT
    Email of the API Gateway (or ESPv2) service account that fronts the API.
    Null (default): the HTTP function is public (allUsers may invoke it),
    because it authenticates and authorizes every request itself. Set: only
    this account may invoke it, and the caller's token is read from
    X-Forwarded-Authorization, where the gateway puts it
    (TRUST_FORWARDED_AUTHORIZATION=true).
  EOT
  type        = string
  default     = null

  validation {
    condition     = var.api_gateway_service_account == null || can(regex("^[^@\\s]+@[^@\\s]+\\.gserviceaccount\\.com$", var.api_gateway_service_account))
    error_message = "api_gateway_service_account must be a service account email (...@....gserviceaccount.com) or null."
  }
}

variable "auth_clock_skew_seconds" {
  description = "Clock skew allowed when checking a JWT's exp, iat and nbf (AUTH_CLOCK_SKEW_SECONDS)."
  type        = number
  default     = 5

  validation {
    condition     = var.auth_clock_skew_seconds >= 0 && var.auth_clock_skew_seconds <= 300 && floor(var.auth_clock_skew_seconds) == var.auth_clock_skew_seconds
    error_message = "auth_clock_skew_seconds must be a whole number from 0 to 300."
  }
}

variable "auth_http_timeout_seconds" {
  description = "Timeout of issuer key and tokeninfo fetches (AUTH_HTTP_TIMEOUT_SECONDS)."
  type        = number
  default     = 5

  validation {
    condition     = var.auth_http_timeout_seconds >= 0.1 && var.auth_http_timeout_seconds <= 60
    error_message = "auth_http_timeout_seconds must be from 0.1 to 60."
  }
}

variable "auth_keys_refresh_seconds" {
  description = "Minimum gap between re-fetches of an issuer's keys when a token names an unknown kid (AUTH_KEYS_REFRESH_SECONDS)."
  type        = number
  default     = 60

  validation {
    condition     = var.auth_keys_refresh_seconds >= 0 && var.auth_keys_refresh_seconds <= 3600
    error_message = "auth_keys_refresh_seconds must be from 0 to 3600."
  }
}

variable "auth_max_token_length" {
  description = "Tokens longer than this many characters are refused before decoding (AUTH_MAX_TOKEN_LENGTH)."
  type        = number
  default     = 4096

  validation {
    condition     = var.auth_max_token_length >= 256 && var.auth_max_token_length <= 65536 && floor(var.auth_max_token_length) == var.auth_max_token_length
    error_message = "auth_max_token_length must be a whole number from 256 to 65536."
  }
}

variable "auth_max_token_lifetime_seconds" {
  description = "Longest JWT lifetime (exp - iat) accepted (AUTH_MAX_TOKEN_LIFETIME_SECONDS)."
  type        = number
  default     = 3600

  validation {
    condition     = var.auth_max_token_lifetime_seconds >= 60 && var.auth_max_token_lifetime_seconds <= 86400 && floor(var.auth_max_token_lifetime_seconds) == var.auth_max_token_lifetime_seconds
    error_message = "auth_max_token_lifetime_seconds must be a whole number from 60 to 86400."
  }
}

variable "cancel_grace_seconds" {
  description = "How long a handler may run on after it saw its cancel before the worker ends the operation without it (CANCEL_FORCED). A kind may set its own."
  type        = number
  default     = 30

  validation {
    condition     = var.cancel_grace_seconds >= 0 && var.cancel_grace_seconds <= 3600
    error_message = "cancel_grace_seconds must be from 0 to 3600."
  }
}

variable "cancel_listener" {
  description = "Whether a running job learns of a cancel from a Firestore listener (push); false leaves it to the heartbeat poll (CANCEL_LISTENER)."
  type        = bool
  default     = true
}

variable "collection" {
  description = "Firestore collection of the operation documents (OPERATIONS_COLLECTION); the indexes and the TTL policy are declared on it."
  type        = string
  default     = "operations"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,99}$", var.collection))
    error_message = "collection must start with a letter and hold only letters, digits, '_' and '-' (at most 100 characters)."
  }
}

variable "create_firestore_database" {
  description = "Create the project's (default) Firestore database in Native mode. Set false when the project already has one (the code uses the (default) database)."
  type        = bool
  default     = true
}

variable "dead_letter_max_delivery_attempts" {
  description = "Deliveries of a job message to the worker before Pub/Sub moves it to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.dead_letter_max_delivery_attempts >= 5 && var.dead_letter_max_delivery_attempts <= 100 && floor(var.dead_letter_max_delivery_attempts) == var.dead_letter_max_delivery_attempts
    error_message = "dead_letter_max_delivery_attempts must be a whole number from 5 to 100 (Pub/Sub's limits)."
  }
}

variable "dead_letter_with_gcloud" {
  description = <<-EOT
    Attach the dead-letter topic to the worker trigger's subscription with
    gcloud during apply. Eventarc creates and owns that subscription and its
    API has no dead-letter setting, so Terraform cannot declare it; the step
    needs the gcloud CLI, authenticated, where Terraform runs. False skips it
    (failed jobs are then retried until Pub/Sub drops them after 24 hours).
  EOT
  type        = bool
  default     = true
}

variable "enable_apis" {
  description = "Enable the Google Cloud APIs the deployment uses. They are left enabled on destroy."
  type        = bool
  default     = true
}

variable "firestore_deadline_seconds" {
  description = "Deadline of each Firestore call, transient retries included (FIRESTORE_DEADLINE_SECONDS): past it a request answers 503 rather than hang."
  type        = number
  default     = 10

  validation {
    condition     = var.firestore_deadline_seconds >= 0.5 && var.firestore_deadline_seconds <= 300
    error_message = "firestore_deadline_seconds must be from 0.5 to 300."
  }
}

variable "firestore_location" {
  description = "Location of the Firestore database when it is created, e.g. nam5, eur3 or a region. Null means var.region."
  type        = string
  default     = null

  validation {
    condition     = var.firestore_location == null || can(regex("^[a-z][a-z0-9-]*[0-9]$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location id such as nam5, eur3 or us-central1."
  }
}

variable "heartbeat_seconds" {
  description = "How often a running job renews its lease and polls for a cancel (HEARTBEAT_SECONDS); less than lease_seconds."
  type        = number
  default     = 5

  validation {
    condition     = var.heartbeat_seconds >= 0.05 && var.heartbeat_seconds <= 600 && var.heartbeat_seconds < var.lease_seconds
    error_message = "heartbeat_seconds must be from 0.05 to 600 and less than lease_seconds."
  }
}

variable "http_function" {
  description = <<-EOT
    Sizing of the HTTP function (operations_http). Each instance runs
    max_instance_request_concurrency gunicorn threads (THREADS): a held :wait
    occupies one, so Cloud Run never routes more requests to an instance than
    it has threads. timeout_seconds must exceed wait_max_seconds.
  EOT
  type = object({
    available_cpu                    = optional(string, "1")
    available_memory                 = optional(string, "512Mi")
    ingress_settings                 = optional(string, "ALLOW_ALL")
    max_instance_count               = optional(number, 10)
    max_instance_request_concurrency = optional(number, 16)
    min_instance_count               = optional(number, 0)
    timeout_seconds                  = optional(number, 300)
  })
  default = {}

  validation {
    condition     = var.http_function.timeout_seconds > var.wait_max_seconds && var.http_function.timeout_seconds <= 3600
    error_message = "http_function.timeout_seconds must exceed wait_max_seconds (a :wait may be held that long) and be at most 3600."
  }
  validation {
    condition     = var.http_function.max_instance_request_concurrency >= 1 && var.http_function.max_instance_request_concurrency <= 1000 && floor(var.http_function.max_instance_request_concurrency) == var.http_function.max_instance_request_concurrency
    error_message = "http_function.max_instance_request_concurrency must be a whole number from 1 to 1000."
  }
  validation {
    condition     = var.http_function.max_instance_request_concurrency == 1 || try(tonumber(var.http_function.available_cpu), 0) >= 1
    error_message = "http_function.available_cpu must be at least 1 when max_instance_request_concurrency is above 1 (Cloud Functions' rule)."
  }
  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.http_function.available_cpu)) && can(regex("^[0-9]+(Mi|Gi|M|G)$", var.http_function.available_memory))
    error_message = "http_function.available_cpu must be a number of CPUs (\"1\", \"2\") and available_memory a size such as \"512Mi\" or \"1Gi\"."
  }
  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.http_function.ingress_settings)
    error_message = "http_function.ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
  validation {
    condition     = var.http_function.min_instance_count >= 0 && var.http_function.min_instance_count <= var.http_function.max_instance_count && var.http_function.max_instance_count >= 1
    error_message = "http_function needs 0 <= min_instance_count <= max_instance_count and max_instance_count >= 1."
  }
}

variable "issuers" {
  description = <<-EOT
    Trusted JWT issuers (AUTH_ISSUERS): issuer -> { keys = URL of its JWKS or
    x509 certificate map, audience = the aud its tokens must carry for this
    service, e.g. the API's URL (required: without it a JWT the issuer made for
    another service would be accepted, RFC 8725 section 3.9) }. Google OAuth
    access tokens need no entry: they are checked at tokeninfo_url. For a
    service account's self-signed JWTs the issuer is its email and keys is
    https://www.googleapis.com/service_accounts/v1/metadata/x509/EMAIL.
  EOT
  type = map(object({
    audience = optional(string)
    keys     = string
  }))
  default = {}

  validation {
    condition     = alltrue([for issuer in values(var.issuers) : startswith(issuer.keys, "https://")])
    error_message = "Each issuer's keys must be an https:// URL (the deployed function cannot read local key files)."
  }

  validation {
    condition     = alltrue([for issuer in values(var.issuers) : trimspace(coalesce(issuer.audience, "")) != ""])
    error_message = "Each issuer needs an audience, the aud its tokens must carry for this service (e.g. the API's URL), so that a JWT it made for another service is refused. Missing for: ${join(", ", sort([for name, issuer in var.issuers : name if trimspace(coalesce(issuer.audience, "")) == ""]))}."
  }
}

variable "kind_modules" {
  description = "Python modules (in the deployed source, e.g. lib.kinds.acme) that register your own kinds; imported by the HTTP function and the worker at start."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.kind_modules : can(regex("^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$", m))])
    error_message = "kind_modules must be dotted Python module names such as lib.kinds.acme."
  }
}

variable "labels" {
  description = "Labels added to the functions, topics, subscription and bucket."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.labels) : can(regex("^[a-z][a-z0-9_-]{0,62}$", key))])
    error_message = "Label keys must start with a lowercase letter and hold only lowercase letters, digits, '_' and '-'."
  }
}

variable "lease_seconds" {
  description = "Lease a worker holds on a running operation (LEASE_SECONDS); the sweep re-queues operations whose lease expired."
  type        = number
  default     = 60

  validation {
    condition     = var.lease_seconds >= 1 && var.lease_seconds <= 3600
    error_message = "lease_seconds must be from 1 to 3600."
  }
}

variable "list_scan_limit" {
  description = "Documents one List call reads at most for a filter Firestore cannot run (NOT, OR, !=); a short page then continues the scan."
  type        = number
  default     = 1000

  validation {
    condition     = var.list_scan_limit >= 10 && var.list_scan_limit <= 100000
    error_message = "list_scan_limit must be from 10 to 100000."
  }
}

variable "log_level" {
  description = "Minimum severity logged (LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "max_attempts" {
  description = "Claims before the sweep gives up on an operation whose workers keep dying (MAX_ATTEMPTS); it then ends ABORTED."
  type        = number
  default     = 3

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 100
    error_message = "max_attempts must be from 1 to 100."
  }
}

variable "max_request_bytes" {
  description = "Largest request body accepted; larger is a 413 (MAX_REQUEST_BYTES)."
  type        = number
  default     = 65536

  validation {
    condition     = var.max_request_bytes >= 1024 && var.max_request_bytes <= 33554432 && floor(var.max_request_bytes) == var.max_request_bytes
    error_message = "max_request_bytes must be a whole number from 1024 to 33554432 (32 MiB, Cloud Functions' request limit)."
  }
}

variable "name" {
  description = "Prefix of every resource name: functions NAME-http, NAME-worker and NAME-sweep, topic NAME-jobs, service accounts NAME-*."
  type        = string
  default     = "operations"

  validation {
    # Service account ids are at most 30 characters: NAME plus "-worker".
    condition     = can(regex("^[a-z]([a-z0-9-]{0,21}[a-z0-9])?$", var.name))
    error_message = "name must be 1 to 23 lowercase letters, digits or '-', starting with a letter and not ending with '-'."
  }
}

variable "page_token_secret" {
  description = "Key that signs list page tokens (PAGE_TOKEN_SECRET); null generates one. Rotating it invalidates outstanding page tokens."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.page_token_secret == null || length(coalesce(var.page_token_secret, "x")) >= 32
    error_message = "page_token_secret must be at least 32 characters."
  }
}

variable "policy" {
  description = <<-EOT
    Who may do what (OPERATIONS_POLICY_FILE; README.md, "Security model"):
    bindings of members (user:EMAIL, serviceAccount:EMAIL, domain:DOMAIN,
    allAuthenticatedUsers) to a role (roles/operations.viewer or
    roles/operations.editor) or to a list of permissions, on resource name
    patterns (`*` one segment, `**` one or more). Anything not granted is
    denied. Shipped in the HTTP function's source as policy.json.
  EOT
  type = object({
    bindings = list(object({
      members     = list(string)
      permissions = optional(list(string))
      resources   = list(string)
      role        = optional(string)
    }))
  })

  validation {
    condition     = alltrue([for b in var.policy.bindings : (b.role == null) != (b.permissions == null)])
    error_message = "Each policy binding needs exactly one of role or permissions."
  }
  validation {
    condition     = alltrue([for b in var.policy.bindings : b.role == null || contains(["roles/operations.viewer", "roles/operations.editor"], coalesce(b.role, "-"))])
    error_message = "A binding's role must be roles/operations.viewer or roles/operations.editor."
  }
  validation {
    condition = alltrue(flatten([for b in var.policy.bindings : [
      for p in coalesce(b.permissions, []) : contains(["operations.get", "operations.list", "operations.wait", "operations.cancel", "operations.delete", "jobs.create"], p)
    ]]))
    error_message = "Permissions must be among operations.get, operations.list, operations.wait, operations.cancel, operations.delete and jobs.create."
  }
  validation {
    condition = alltrue(flatten([for b in var.policy.bindings : [
      for m in b.members : can(regex("^((user|serviceAccount):[^@\\s:]+@[^@\\s:]+\\.[^@\\s:]+|domain:[A-Za-z0-9.-]+\\.[A-Za-z]+|allAuthenticatedUsers)$", m))
    ]]))
    error_message = "Members must be user:EMAIL, serviceAccount:EMAIL, domain:DOMAIN or allAuthenticatedUsers."
  }
  validation {
    condition     = alltrue([for b in var.policy.bindings : length(b.members) > 0 && length(b.resources) > 0])
    error_message = "Each policy binding needs at least one member and one resource pattern."
  }
}

variable "progress_min_interval_seconds" {
  description = "Minimum gap between two progress writes of a running job (PROGRESS_MIN_INTERVAL_SECONDS)."
  type        = number
  default     = 1

  validation {
    condition     = var.progress_min_interval_seconds >= 0 && var.progress_min_interval_seconds <= 60
    error_message = "progress_min_interval_seconds must be from 0 to 60."
  }
}

variable "project_id" {
  description = "Google Cloud project to deploy into (GOOGLE_CLOUD_PROJECT)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id: 6 to 30 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "region" {
  description = "Region of the functions, their triggers, the scheduler job and the source bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "retention_days" {
  description = "Days a finished operation is kept before the Firestore TTL policy deletes it (RETENTION_DAYS, AIP-151)."
  type        = number
  default     = 30

  validation {
    condition     = var.retention_days >= 0.0001 && var.retention_days <= 3650
    error_message = "retention_days must be from 0.0001 to 3650."
  }
}

variable "retry_backoff_seconds" {
  description = "First wait before a job whose handler failed unexpectedly is tried again; it doubles on each try (RETRY_BACKOFF_SECONDS)."
  type        = number
  default     = 1

  validation {
    condition     = var.retry_backoff_seconds >= 0 && var.retry_backoff_seconds <= 300
    error_message = "retry_backoff_seconds must be from 0 to 300."
  }
}

variable "runtime" {
  description = "Python runtime of the three functions."
  type        = string
  default     = "python311"

  validation {
    condition     = contains(["python311", "python312", "python313"], var.runtime)
    error_message = "runtime must be python311, python312 or python313."
  }
}

variable "source_bucket_name" {
  description = "Name of the bucket that holds the source bundles. Null means PROJECT_ID-NAME-sources."
  type        = string
  default     = null

  validation {
    condition     = var.source_bucket_name == null || can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.source_bucket_name))
    error_message = "source_bucket_name must be a valid bucket name (3 to 63 lowercase letters, digits, '-', '_' or '.')."
  }
}

variable "surfaces" {
  description = <<-EOT
    API surfaces replacing the built-in v1 and v3beta1 (OPERATIONS_SURFACES_FILE,
    lib/routes.py): surface -> { scopes = OAuth scopes it accepts (any one),
    routes = [{ method, template (AIP-127), action, and on a create_job
    route: operations = the name template of its operations over {parent}
    and {id}, parent = the literal parent of a path without a variable }] }.
    Null keeps the built-in table. Shipped in the HTTP function's source as
    surfaces.json.
  EOT
  type = map(object({
    routes = list(object({
      action     = string
      method     = string
      operations = optional(string)
      parent     = optional(string)
      template   = string
    }))
    scopes = list(string)
  }))
  default = null

  validation {
    condition     = var.surfaces == null || alltrue([for s in values(coalesce(var.surfaces, {})) : length(s.scopes) > 0 && alltrue([for scope in s.scopes : startswith(scope, "https://")])])
    error_message = "Each surface needs at least one scope, and scopes are URLs (https://www.googleapis.com/auth/...)."
  }
  validation {
    condition = var.surfaces == null || alltrue(flatten([for s in values(coalesce(var.surfaces, {})) : [
      for r in s.routes : contains(["get", "list", "wait", "cancel", "delete", "create_job"], r.action) && contains(["GET", "POST", "DELETE"], r.method) && startswith(r.template, "/")
    ]]))
    error_message = "Each route needs an action (get, list, wait, cancel, delete, create_job), a method (GET, POST, DELETE) and a template starting with '/'."
  }
}

variable "sweep_function" {
  description = <<-EOT
    The sweep (operations_sweep): Cloud Scheduler publishes to the sweep topic
    on `schedule`, and the function re-queues operations whose worker lease
    expired and re-publishes queued ones whose message was lost. One instance
    at a time; a failed sweep is not retried, the next tick runs again.
  EOT
  type = object({
    available_memory = optional(string, "256Mi")
    scheduler_region = optional(string)
    schedule         = optional(string, "* * * * *")
    time_zone        = optional(string, "Etc/UTC")
    timeout_seconds  = optional(number, 120)
  })
  default = {}

  validation {
    condition     = var.sweep_function.timeout_seconds >= 1 && var.sweep_function.timeout_seconds <= 540
    error_message = "sweep_function.timeout_seconds must be from 1 to 540 (the limit of event-driven functions)."
  }
  validation {
    condition     = length(split(" ", trimspace(var.sweep_function.schedule))) == 5 && can(regex("^[0-9]+(Mi|Gi|M|G)$", var.sweep_function.available_memory))
    error_message = "sweep_function.schedule must be a five-field cron expression and available_memory a size such as \"256Mi\"."
  }
}

variable "sweep_queued_after_seconds" {
  description = "A QUEUED operation older than this is re-published by the sweep, its first message presumed lost (SWEEP_QUEUED_AFTER_SECONDS)."
  type        = number
  default     = 120

  validation {
    condition     = var.sweep_queued_after_seconds >= 1 && var.sweep_queued_after_seconds <= 86400
    error_message = "sweep_queued_after_seconds must be from 1 to 86400."
  }
}

variable "tokeninfo_url" {
  description = "Endpoint that checks opaque OAuth access tokens (AUTH_TOKENINFO_URL), e.g. from `gcloud auth print-access-token`. Null disables opaque tokens: only JWTs of the issuers are accepted."
  type        = string
  default     = "https://oauth2.googleapis.com/tokeninfo"

  validation {
    condition     = var.tokeninfo_url == null || startswith(coalesce(var.tokeninfo_url, "-"), "https://")
    error_message = "tokeninfo_url must be an https:// URL or null."
  }
}

variable "trace_sample_ratio" {
  description = "Fraction of new traces recorded (OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG); a request that comes with a sampled trace context is always recorded."
  type        = number
  default     = 1

  validation {
    condition     = var.trace_sample_ratio >= 0 && var.trace_sample_ratio <= 1
    error_message = "trace_sample_ratio must be from 0 to 1."
  }
}

variable "wait_max_seconds" {
  description = "Longest time a :wait request is held (WAIT_MAX_SECONDS); http_function.timeout_seconds must exceed it."
  type        = number
  default     = 60

  validation {
    condition     = var.wait_max_seconds >= 0 && var.wait_max_seconds <= 3600
    error_message = "wait_max_seconds must be from 0 to 3600."
  }
}

variable "worker_function" {
  description = <<-EOT
    Sizing of the worker (operations_worker), triggered by the jobs topic with
    retries on. timeout_seconds bounds one run (at most 540 for event-driven
    functions). Each instance runs up to max_instance_request_concurrency jobs
    at once (gunicorn THREADS to match), so max_instance_count x that bounds
    the jobs running at once (20 x 80 = 1,600 by default). Jobs behind an LRO
    API mostly wait on other systems and pack well: one instance lease, one
    cancel listener and one thread serve all of an instance's jobs. Lower it
    for CPU-bound kinds (to the instance's CPUs, e.g. 1 or 2), where jobs
    sharing an instance only slow each other down.
  EOT
  type = object({
    available_cpu                    = optional(string, "1")
    available_memory                 = optional(string, "1Gi")
    max_instance_count               = optional(number, 20)
    max_instance_request_concurrency = optional(number, 80)
    min_instance_count               = optional(number, 0)
    timeout_seconds                  = optional(number, 540)
  })
  default = {}

  validation {
    condition     = var.worker_function.timeout_seconds >= 1 && var.worker_function.timeout_seconds <= 540
    error_message = "worker_function.timeout_seconds must be from 1 to 540 (the limit of event-driven functions)."
  }
  validation {
    condition     = var.worker_function.max_instance_request_concurrency >= 1 && var.worker_function.max_instance_request_concurrency <= 1000 && floor(var.worker_function.max_instance_request_concurrency) == var.worker_function.max_instance_request_concurrency
    error_message = "worker_function.max_instance_request_concurrency must be a whole number from 1 to 1000."
  }
  validation {
    condition     = var.worker_function.max_instance_request_concurrency == 1 || try(tonumber(var.worker_function.available_cpu), 0) >= 1
    error_message = "worker_function.available_cpu must be at least 1 when max_instance_request_concurrency is above 1 (Cloud Functions' rule)."
  }
  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.worker_function.available_cpu)) && can(regex("^[0-9]+(Mi|Gi|M|G)$", var.worker_function.available_memory))
    error_message = "worker_function.available_cpu must be a number of CPUs (\"1\", \"2\") and available_memory a size such as \"512Mi\" or \"1Gi\"."
  }
  validation {
    condition     = var.worker_function.min_instance_count >= 0 && var.worker_function.min_instance_count <= var.worker_function.max_instance_count && var.worker_function.max_instance_count >= 1
    error_message = "worker_function needs 0 <= min_instance_count <= max_instance_count and max_instance_count >= 1."
  }
}

# Firestore: the (default) database, the composite indexes of the store's
# queries, and the TTL policies that delete finished operations and old
# create request ids.

resource "google_firestore_database" "default" {
  count       = var.create_firestore_database ? 1 : 0
  project     = var.project_id
  name        = "(default)"
  location_id = coalesce(var.firestore_location, var.region)
  type        = "FIRESTORE_NATIVE"
  # Optimistic: a transaction's reads take no lock. With the default
  # (pessimistic) a worker that is killed or frozen inside a transaction
  # (an instance stopped at its timeout, say) leaves its operation locked
  # until Firestore expires the lock, 60 s later: until then cancels of it
  # end 409 ABORTED. Optimistic, a commit whose reads changed is aborted and
  # the store runs it again. Existing databases: see terraform/README.md.
  concurrency_mode = "OPTIMISTIC"
  # The operations outlive any one deployment: `terraform destroy` leaves
  # the database (and its data) in place.
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [google_project_service.enabled]
}

locals {
  firestore_database = var.create_firestore_database ? google_firestore_database.default[0].name : "(default)"

  # Composite indexes, by the query they serve. List: `parent ==` (plus at
  # most one equality filter) ordered by createTime desc then __name__ desc;
  # Firestore merges these for a filter on two fields. Sweep: RUNNING with an
  # expired lease, and QUEUED created before a cut-off.
  firestore_indexes = {
    list = [
      { field = "parent", order = "ASCENDING" },
      { field = "createTime", order = "DESCENDING" },
      { field = "__name__", order = "DESCENDING" },
    ]
    list_by_done = [
      { field = "parent", order = "ASCENDING" },
      { field = "done", order = "ASCENDING" },
      { field = "createTime", order = "DESCENDING" },
      { field = "__name__", order = "DESCENDING" },
    ]
    list_by_error_code = [
      { field = "parent", order = "ASCENDING" },
      { field = "error.code", order = "ASCENDING" },
      { field = "createTime", order = "DESCENDING" },
      { field = "__name__", order = "DESCENDING" },
    ]
    list_by_kind = [
      { field = "parent", order = "ASCENDING" },
      { field = "kind", order = "ASCENDING" },
      { field = "createTime", order = "DESCENDING" },
      { field = "__name__", order = "DESCENDING" },
    ]
    list_by_target = [
      { field = "parent", order = "ASCENDING" },
      { field = "target", order = "ASCENDING" },
      { field = "createTime", order = "DESCENDING" },
      { field = "__name__", order = "DESCENDING" },
    ]
    list_by_verb = [
      { field = "parent", order = "ASCENDING" },
      { field = "verb", order = "ASCENDING" },
      { field = "createTime", order = "DESCENDING" },
      { field = "__name__", order = "DESCENDING" },
    ]
    sweep_expired_leases = [
      { field = "state", order = "ASCENDING" },
      { field = "lease.expireTime", order = "ASCENDING" },
    ]
    sweep_stale_queued = [
      { field = "state", order = "ASCENDING" },
      { field = "updateTime", order = "ASCENDING" },
    ]
  }
}

resource "google_firestore_index" "operations" {
  for_each    = local.firestore_indexes
  project     = var.project_id
  database    = local.firestore_database
  collection  = var.collection
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value.field
      order      = fields.value.order
    }
  }
}

# TTL: Firestore deletes a document once its expireTime has passed (within
# about a day; deletes are billed as deletes). The field is never queried,
# so its single-field indexes are turned off, as the TTL guide advises.
resource "google_firestore_field" "expire_time" {
  project    = var.project_id
  database   = local.firestore_database
  collection = var.collection
  field      = "expireTime"

  ttl_config {}
  index_config {}
}

# AIP-155 request ids: one document per create's requestId (lib/core/store.py,
# create_once) in the collection next to the operations, kept 24 hours.
# The same TTL policy deletes each once its expireTime has passed; the store
# treats an expired one as gone even before then.
resource "google_firestore_field" "request_id_expire_time" {
  project    = var.project_id
  database   = local.firestore_database
  collection = "${var.collection}-requests"
  field      = "expireTime"

  ttl_config {}
  index_config {}
}

# Each worker instance's cancel inbox (lib/core/store.py, INBOX_SUFFIX): a
# subcollection of its instance lease document. The instance deletes the
# entries it has passed on; one it did not live to delete goes by this TTL.
resource "google_firestore_field" "cancel_inbox_expire_time" {
  project    = var.project_id
  database   = local.firestore_database
  collection = "${var.collection}-cancels"
  field      = "expireTime"

  ttl_config {}
  index_config {}
}

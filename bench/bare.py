"""The floor: bare functions-framework functions, never deployed.

Each makes the single Firestore call the matching operation of the service
cannot avoid, and nothing else (no auth, no policy, no proto JSON, no log
line). ``make bench`` starts them with the functions-framework CLI beside
``operations_http`` and ``operations_worker``, on the same emulator.

- ``bare_get``: ``GET /?id=<document id>``: one document get, answered as JSON.
- ``bare_cancel``: ``POST /?id=<document id>``: one transaction that reads the
  document and writes the cancel fields unless the cancel is already
  requested or the operation is done (then it writes nothing).
- ``bare_worker``: a CloudEvent function that acknowledges; it prints the
  wall-clock time it was invoked at, so the bench can time publish → push.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import functions_framework
from google.cloud import firestore

_CLIENT = firestore.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT"))
_COLLECTION = _CLIENT.collection(os.environ["BARE_COLLECTION"])


def _default(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@functions_framework.http
def bare_get(request: Any) -> Any:
    snapshot = _COLLECTION.document(request.args["id"]).get()
    if not snapshot.exists:
        return {"error": "not found"}, 404
    return json.dumps(snapshot.to_dict(), default=_default), 200, {
        "Content-Type": "application/json"}


@firestore.transactional
def _cancel(transaction: Any, ref: Any) -> bool:
    record = ref.get(transaction=transaction).to_dict()
    if record is None:
        return False
    if record.get("done") or record.get("cancelRequested"):
        return True  # nothing to write
    now = datetime.now(UTC)
    transaction.update(ref, {"cancelRequested": True, "cancelRequestTime": now,
                             "cancelRequestedBy": "bare", "statusMessage": "Cancelling.",
                             "updateTime": now})
    return True


@functions_framework.http
def bare_cancel(request: Any) -> Any:
    found = _cancel(_CLIENT.transaction(), _COLLECTION.document(request.args["id"]))
    return ("{}", 200) if found else ('{"error": "not found"}', 404)


@functions_framework.cloud_event
def bare_worker(cloud_event: Any) -> None:
    print(json.dumps({"bareReceived": cloud_event.data["message"].get("attributes", {})
                      .get("seq"), "at": time.time()}), flush=True)

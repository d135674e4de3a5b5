"""Cloud Functions entry points: ``operations_http``, ``operations_worker`` and
``operations_sweep``.

Nothing connects to the network at import time. Settings, the route table
and the policy are read here (files only), so a bad configuration stops the
start-up with a message naming the problem; the Firestore and Pub/Sub clients
are built on the first request that needs them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import flask
import functions_framework

from lib.core import logs
from lib.core.config import Settings
from lib.core.publisher import PubSubEventPublisher, PubSubJobPublisher
from lib.core.service import OperationsService
from lib.core.store import FirestoreOperationStore
from lib.edge.api import OperationsApi
from lib.edge.auth import GoogleAuthVerifier
from lib.edge.policy import Policy
from lib.edge.routes import RouteTable
from lib.jobs.sweep import RecoverySweep
from lib.jobs.worker import OperationWorker, Redeliver
from lib.kinds import load_kinds

SETTINGS = Settings.from_env()
logs.configure(SETTINGS.log_level, project=SETTINGS.project)
load_kinds(SETTINGS.kind_modules)
POLICY = Policy.from_file(SETTINGS.policy_file) if SETTINGS.policy_file else Policy.deny_all()
ROUTES = RouteTable.from_file(SETTINGS.surfaces_file)

T = TypeVar("T")


def _once(build: Callable[[], T]) -> Callable[[], T]:
    """``build()`` on first call, under a lock; the same object afterwards."""
    lock = threading.Lock()
    built: list[T] = []

    def get() -> T:
        if not built:
            with lock:
                if not built:
                    built.append(build())
        return built[0]

    return get


def _build_store() -> FirestoreOperationStore:
    from google.cloud import firestore

    events = (PubSubEventPublisher(SETTINGS.project, SETTINGS.events_topic)
              if SETTINGS.events_topic else None)
    return FirestoreOperationStore(firestore.Client(project=SETTINGS.project), SETTINGS.collection,
                                   deadline_seconds=SETTINGS.firestore_deadline_seconds,
                                   events=events)


store = _once(_build_store)
publisher = _once(lambda: PubSubJobPublisher(SETTINGS.project, SETTINGS.topic))
service = _once(lambda: OperationsService(store(), publisher(), SETTINGS))
api = _once(lambda: OperationsApi(SETTINGS, ROUTES, GoogleAuthVerifier(SETTINGS), POLICY, service))
worker = _once(lambda: OperationWorker(store(), SETTINGS, publisher()))
sweep = _once(lambda: RecoverySweep(store(), publisher(), SETTINGS))


@functions_framework.http
def operations_http(request: Any) -> Any:
    """The Operations API (HTTP function)."""
    return api().handle(request)


@functions_framework.errorhandler(404)
def _unrouted(error: Any) -> Any:
    """Requests functions-framework's own route does not take (an encoded line
    feed in the path, say) still get the API's JSON answer, not an HTML page."""
    if flask.current_app.name != "operations_http":
        return error.get_response()
    return api().handle(flask.request)


@functions_framework.cloud_event
def operations_worker(cloud_event: Any) -> None:
    """Runs the job a Pub/Sub message names (CloudEvent ``messagePublished``)."""
    worker().handle_message(cloud_event)


@functions_framework.errorhandler(Redeliver)
def _redeliver(_error: Redeliver) -> Any:
    """A nack without a crash: Pub/Sub retries any answer but 102 and 2xx."""
    return "", 503


@functions_framework.cloud_event
def operations_sweep(cloud_event: Any) -> None:
    """Recovers what dead workers and lost messages left (Cloud Scheduler tick)."""
    sweep().tick()

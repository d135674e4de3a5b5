"""Pub/Sub: tells the worker that a job is queued, and announces lifecycle
events. Only this module imports Pub/Sub.

A job message carries its publish span's context in a W3C ``traceparent``
attribute (lib/core/telemetry.py). google-cloud-pubsub's own OpenTelemetry option
(``PublisherOptions(enable_open_telemetry_tracing=True)``) was not used: it
writes the context as ``googclient_traceparent``, which only its own
streaming-pull subscriber reads, while the worker is pushed CloudEvents by
Eventarc and reads the attributes itself; the standard attribute is what
any consumer's propagator understands.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from google.api_core import exceptions

from lib.core import errors, events, telemetry

log = logging.getLogger("operations.publisher")


class JobPublisher(Protocol):
    def publish(self, name: str) -> None:
        """Publishes ``{"name": name}``; raises ServiceUnavailable on failure."""


class _PubSubClient:
    """A publisher client for one topic, built on first use: grpc is heavy,
    and a cold start should not pay for it before the first publish."""

    ordered = False  # per-key ordering (the events' ordering key is the operation)

    def __init__(self, project: str, topic: str, timeout_seconds: float = 10.0,
                 client: Any = None) -> None:
        self._project = project
        self._topic = topic
        self._timeout = timeout_seconds
        self._client = client
        self._lock = threading.Lock()

    def _publisher(self) -> Any:
        with self._lock:
            if self._client is None:
                import google.cloud.pubsub_v1 as pubsub_v1

                # One message per publish: no batching delay on the request path.
                self._client = pubsub_v1.PublisherClient(
                    batch_settings=pubsub_v1.types.BatchSettings(max_messages=1),
                    publisher_options=pubsub_v1.types.PublisherOptions(
                        enable_message_ordering=self.ordered),
                )
            return self._client


class PubSubJobPublisher(_PubSubClient):
    """Publishes job messages to the jobs topic."""

    def publish(self, name: str) -> None:
        client = self._publisher()
        topic = client.topic_path(self._project, self._topic)
        data = json.dumps({"name": name}).encode()
        try:
            with telemetry.publish_span(self._topic, name) as attributes:
                client.publish(topic, data, **attributes).result(timeout=self._timeout)
        except (exceptions.GoogleAPICallError, TimeoutError, OSError) as exc:
            raise errors.error(exceptions.ServiceUnavailable,
                               "Could not queue the job; nothing was created. Retry.",
                               "PUBLISH_FAILED") from exc


class PubSubEventPublisher(_PubSubClient):
    """Publishes lifecycle events (lib/core/events.py) to the events topic, in
    order per operation (the ordering key is its name)."""

    ordered = True

    def publish_events(self, messages: Sequence[events.EventMessage]) -> int:
        """Publishes ``messages`` in order; returns how many were published.

        Stops at the first failure (a later event must not overtake it): what
        is left stays marked pending, and the sweep publishes it.
        """
        client = self._publisher()
        topic = client.topic_path(self._project, self._topic)
        published = 0
        for message in messages:
            try:
                client.publish(topic, message.data, ordering_key=message.ordering_key,
                               **message.attributes).result(timeout=self._timeout)
            except Exception as exc:
                # An ordering key stays paused after a failure until resumed
                # (RuntimeError: it was not paused, e.g. after a timeout).
                with contextlib.suppress(RuntimeError, ValueError):
                    client.resume_publish(topic, message.ordering_key)
                log.warning("event not published; the sweep will publish it", extra={
                    "json_fields": {"operation": message.operation,
                                    "eventType": message.event_type,
                                    "error": type(exc).__name__}})
                break
            published += 1
        return published

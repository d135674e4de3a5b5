"""Pub/Sub: tells the worker that a job is queued. Only this module imports Pub/Sub."""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

from google.api_core import exceptions

from lib import errors


class JobPublisher(Protocol):
    def publish(self, name: str) -> None:
        """Publishes ``{"name": name}``; raises ServiceUnavailable on failure."""


class PubSubJobPublisher:
    """Publishes job messages to a topic; the client is built on first use."""

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
                # heavy (grpc): imported on first publish, not at cold start
                import google.cloud.pubsub_v1 as pubsub_v1

                # One message per request: no batching delay on the create path.
                self._client = pubsub_v1.PublisherClient(
                    batch_settings=pubsub_v1.types.BatchSettings(max_messages=1)
                )
            return self._client

    def publish(self, name: str) -> None:
        client = self._publisher()
        topic = client.topic_path(self._project, self._topic)
        data = json.dumps({"name": name}).encode()
        try:
            client.publish(topic, data).result(timeout=self._timeout)
        except (exceptions.GoogleAPICallError, TimeoutError, OSError) as exc:
            raise errors.error(exceptions.ServiceUnavailable,
                               "Could not queue the job; nothing was created. Retry.",
                               "PUBLISH_FAILED") from exc

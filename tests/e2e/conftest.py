"""The running local stack: emulators, push subscription, both functions
under functions-framework, exactly as ``make run`` starts them."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from lib import devtoken
from lib.localstack import (
    Emulators,
    Functions,
    create_push_subscription,
    create_topic,
    free_port,
    stack_env,
)
from lib.store import FirestoreOperationStore

COLLECTION = "operations-e2e"


@dataclass
class Stack:
    url: str
    project: str
    logs: Path
    dev_dir: Path
    store: FirestoreOperationStore
    env: dict[str, str]
    emulators: Emulators
    worker_url: str
    _tokens: dict[tuple[Any, ...], str] = field(default_factory=dict)

    def token(self, *scopes: str, subject: str = "dev@example.com", ttl: int = 900) -> str:
        """A dev token; the same one again for the same arguments (minting
        reloads the RSA key, ~0.1 s), so the suite stays fast."""
        key = (scopes, subject, ttl)
        if key not in self._tokens:
            self._tokens[key] = devtoken.mint(scopes=list(scopes) or [devtoken.DEFAULT_SCOPE],
                                              subject=subject, ttl=ttl, dev_dir=self.dev_dir,
                                              audience=self.url)
        return self._tokens[key]

    def headers(self, *scopes: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes, **kwargs)}"}

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs.glob("*.log"))


@pytest.fixture(scope="session")
def stack(emulators: Emulators, dev_dir: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    devtoken.ensure_dev_key(dev_dir)
    topic = f"jobs-{uuid.uuid4().hex[:8]}"
    http_port, worker_port = free_port(), free_port()
    url = f"http://127.0.0.1:{http_port}"
    create_push_subscription(
        emulators, topic,
        f"http://127.0.0.1:{worker_port}/projects/{emulators.project}/topics/{topic}")
    create_topic(emulators, f"{topic}-events")
    env = stack_env(os.environ, emulators, topic, {
        "OPERATIONS_EVENTS_TOPIC": f"{topic}-events",
        "AUTH_ISSUERS": devtoken.issuers_env(dev_dir, audience=url),  # as make run's
        "OPERATIONS_COLLECTION": COLLECTION,
        "OPERATIONS_KIND_MODULES": "tests.e2e.user_kinds",
        "OPERATIONS_POLICY_FILE": str(Path(__file__).parent / "policy.json"),
        "HEARTBEAT_SECONDS": "1",
        "CANCEL_GRACE_SECONDS": "2",  # a stubborn handler is forced in seconds
        "PROGRESS_MIN_INTERVAL_SECONDS": "0",
        # Above the emulator's ~2 s lock wait, which two colliding transactions
        # pay (production Firestore aborts the younger one at once instead).
        "FIRESTORE_DEADLINE_SECONDS": "5",
    })
    logs = tmp_path_factory.mktemp("function-logs")
    functions = Functions(env, http_port, worker_port, logs)
    functions.start()
    from google.cloud import firestore

    store = FirestoreOperationStore(firestore.Client(project=emulators.project), COLLECTION)
    _warm_up(url, devtoken.mint(dev_dir=dev_dir, audience=url))
    try:
        yield Stack(url, emulators.project, logs, dev_dir, store,
                    env, emulators, f"http://127.0.0.1:{worker_port}")
    finally:
        functions.stop()


def _warm_up(url: str, token: str) -> None:
    """The first Firestore call of a fresh process opens its channel, which can
    take longer than the tests' short store deadline: make it before the tests."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = requests.get(f"{url}/v1/projects/warm/locations/up/operations/x", timeout=30,
                                headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 503:
            return
    raise RuntimeError("the stack's store never answered")


@pytest.fixture
def parent(unique: str) -> str:
    """A parent of this test's own: no other test sees its operations."""
    return f"projects/p-{unique}/locations/us"


@pytest.fixture(scope="session")
def auth_headers(stack: Stack) -> dict[str, str]:
    """The dev subject's Authorization header (an editor of everything)."""
    return stack.headers()


@pytest.fixture
def api(stack: Stack, auth_headers: dict[str, str]) -> Iterator[Callable[..., requests.Response]]:
    """``api(method, path, **kwargs)`` with the dev token unless headers are given."""
    session = requests.Session()

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", auth_headers)
        kwargs.setdefault("timeout", 30)
        return session.request(method, stack.url + path, **kwargs)

    yield call
    session.close()

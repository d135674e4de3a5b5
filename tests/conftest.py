"""Session fixtures: the real Firestore and Pub/Sub emulators, started once.

Tests that need them ask for ``emulators``; pure unit tests never start them.
Each test gets its own collection or name prefix, so tests never see each
other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.tools.localstack import Emulators, free_port


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    log_dir = tmp_path_factory.mktemp("emulators")
    stack = Emulators("demo-test", free_port(), free_port(), log_dir)
    stack.start()
    previous = {key: os.environ.get(key) for key in stack.env()}
    os.environ.update(stack.env())  # the client libraries read these
    try:
        yield stack
    finally:
        stack.stop()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def unique() -> str:
    """A short id, unique to this test, for collections and name prefixes."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def dev_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dev-issuer key made for this session (never the repo's .dev/)."""
    return tmp_path_factory.mktemp("dev")

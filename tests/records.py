"""Records as the store holds them, for tests of what is made from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lib.core import model

NAME = "projects/p/locations/l/operations/o"


def job(now: datetime, **changes: Any) -> dict[str, Any]:
    """A queued demo.countdown job named ``NAME``, with ``changes`` applied."""
    record = model.new_job(name=NAME, parent="projects/p/locations/l",
                           target="projects/p/locations/l/jobs/o", kind="demo.countdown",
                           params={"steps": 3}, created_by="alice@example.com", now=now)
    record.update(changes)
    return record


def running(now: datetime, lease_expires: datetime, **changes: Any) -> dict[str, Any]:
    """The same job as a worker's claim leaves it."""
    return job(now, **{"state": "RUNNING", "attempt": 1,
                       "lease": {"owner": "w", "token": 1, "expireTime": lease_expires},
                       **changes})

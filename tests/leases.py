"""Claims as a given worker instance, for tests that play dead or live workers."""

from __future__ import annotations

from datetime import datetime, timedelta

from lib.core import model

RETENTION = timedelta(days=30)


def claim_as(store, name: str, owner: str = "worker-a", lease_seconds: float = 60.0,
             now: datetime | None = None):
    """What a worker process does: renew its instance lease, then claim."""
    now = now or model.utcnow()
    store.renew_instance(owner, now=now, lease_seconds=lease_seconds)
    return store.claim(name, owner=owner, now=now, retention=RETENTION)


def instance_expired(store, owner: str) -> bool:
    """True once ``owner``'s instance lease has run out (what the sweep sees)."""
    snapshot = store._instances.document(owner).get()
    return snapshot.exists and snapshot.get("expireTime") < model.utcnow()

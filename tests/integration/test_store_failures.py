"""Firestore failures provoked for real on the emulator reach callers translated:
a generic 500 INTERNAL (cause logged, not answered), never Firestore's own
exception or message."""

from __future__ import annotations

import logging

import pytest
from google.api_core import exceptions

from lib.core import errors, model
from lib.core.store import Lease
from tests.leases import claim_as


def job(name, **params):
    return model.new_job(name=name, parent=name.rsplit("/", 2)[0], target="t",
                         kind="demo.countdown", params=params, created_by="t",
                         now=model.utcnow())


@pytest.mark.parametrize(("label", "params"), [
    ("empty-key", {"": 1}),
    ("nested-list", {"a": [[1]]}),
    ("reserved-key", {"__x__": 1}),
    ("integer-over-64-bits", {"n": 2**64}),
], ids=["an empty key (the encoder's ValueError)", "a list in a list (INVALID_ARGUMENT)",
        "a reserved key (INVALID_ARGUMENT)", "an integer over 64 bits (the encoder's ValueError)"])
def test_a_write_firestore_refuses_is_a_generic_internal_error(store, unique, label, params,
                                                               caplog):
    caplog.set_level(logging.ERROR, logger="operations.store")
    name = f"projects/p-{unique}/locations/us/operations/{label}"
    with pytest.raises(exceptions.InternalServerError) as caught:
        store.create(job(name, **params))
    assert errors.error_body(caught.value) == errors.error_body(errors.internal_error())
    assert len([r for r in caplog.records if "Firestore call failed" in r.getMessage()]) == 1
    assert store.get(name) is None


def test_a_transaction_write_firestore_refuses_is_a_generic_internal_error(store, queued, caplog):
    caplog.set_level(logging.ERROR, logger="operations.store")
    name = queued()
    held = claim_as(store, name, owner="w", now=model.utcnow(), lease_seconds=60)
    with pytest.raises(exceptions.InternalServerError):
        store.update_running(name, held.lease, {"checkpoint": {"": 0}})
    [line] = [r for r in caplog.records if "Firestore call failed" in r.getMessage()]
    assert line.json_fields["store_error"]["reason"] == "ValueError"
    store.update_running(name, held.lease, {"checkpoint": {"chunk": 1}})  # the lease holds
    assert store.get(name)["checkpoint"] == {"chunk": 1}


def test_a_lost_lease_is_still_lease_lost_not_a_500(store, queued):
    from lib.core.store import LeaseLost

    name = queued()
    held = claim_as(store, name, owner="w", now=model.utcnow(), lease_seconds=60)
    with pytest.raises(LeaseLost):
        store.update_running(name, Lease("w", held.lease.token + 1), {"progressPercent": 5})

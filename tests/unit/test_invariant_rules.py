"""check_record: every record the real code writes passes; each broken record
breaks exactly the rules it should.

Legitimate records come from lib.core.store's own transaction bodies (``_claim``,
``_cancel``, ``_renew``, ``_update_running``, ``_finish``) run on in-memory
documents, driven step by step and by the real OperationWorker. Every version
of every document they write is checked at the moment it was written.

(Named test_invariant_rules.py, not test_invariants.py: tests/ has no
__init__.py, so two test modules of one basename cannot be collected together.)
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from google.api_core import exceptions
from google.cloud import firestore
from google.rpc import code_pb2

from lib.core import model, store
from lib.core.config import Settings
from lib.jobs.worker import OperationWorker
from lib.kinds import register
from lib.tools import invariants
from lib.tools.invariants import CLOCK_SKEW, DEFAULT_GRACE, Violation, check_record

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SWEEP = timedelta(seconds=60)
RETENTION = timedelta(days=30)
PARENT = "projects/p/locations/us"
NAME = f"{PARENT}/operations/op-1"
DROP = object()  # in a table of changes: remove the field


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class Doc:
    """A document reference as lib.core.store's transaction bodies use one."""

    def __init__(self, record: dict | None) -> None:
        self.record = record

    def get(self, transaction=None):
        record = copy.deepcopy(self.record)
        return SimpleNamespace(exists=record is not None, to_dict=lambda: record)


class Instances:
    """The instance-lease collection as lib.core.store's transaction bodies use it."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    def document(self, owner: str) -> Doc:
        return self.docs.setdefault(owner, Doc(None))


class MemoryStore:
    """The OperationStore the worker needs, on lib.core.store's real transaction
    bodies; ``history`` holds (time, record) for every version written."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.docs: dict[str, Doc] = {}
        self.instances = Instances()
        self.inboxes: dict[str, Instances] = {}  # each instance's cancel inbox
        self.history: list[tuple[datetime, dict]] = []
        self._lock = threading.Lock()

    def update(self, ref: Doc, changes: dict) -> None:  # the transaction's update
        for path, value in changes.items():
            *parents, leaf = path.split(".")
            target = ref.record
            for part in parents:
                target = target[part]
            if isinstance(value, firestore.Increment):
                value = target.get(leaf, 0) + value.value
            target[leaf] = copy.deepcopy(value)
        self.history.append((self.clock(), copy.deepcopy(ref.record)))

    def set(self, ref: Doc, data: dict) -> None:  # the transaction's set (inbox entries)
        ref.record = copy.deepcopy(data)

    def inbox(self, owner: str) -> Instances:
        return self.inboxes.setdefault(owner, Instances())

    def _run(self, body, name, *args):
        with self._lock:
            return body.to_wrap(self, self.docs[name], *args)[0]

    def create(self, record) -> None:
        self.docs[record["name"]] = Doc(copy.deepcopy(dict(record)))
        self.history.append((self.clock(), copy.deepcopy(dict(record))))

    def get(self, name):
        return copy.deepcopy(self.docs[name].record)

    def cancel(self, name, *, principal="alice@example.com", now=None, retention=RETENTION,
               reason=""):
        return self._run(store._cancel, name, principal, now or self.clock(), retention, reason,
                         None, self.inbox)

    def renew_instance(self, owner, *, now, lease_seconds):
        self.instances.document(owner).record = {
            "owner": owner, "expireTime": now + timedelta(seconds=lease_seconds)}

    def claim(self, name, *, owner="worker-a", now=None, lease_seconds=None, retention=RETENTION):
        """A worker's claim; with ``lease_seconds``, its instance renews first."""
        now = now or self.clock()
        if lease_seconds is not None or self.instances.document(owner).record is None:
            self.renew_instance(owner, now=now, lease_seconds=lease_seconds or 60.0)
        return self._run(store._claim, name, self.instances, owner, now, retention)

    def instance_expiry(self) -> dict:
        return {owner: doc.record["expireTime"] for owner, doc in self.instances.docs.items()
                if doc.record}

    def update_running(self, name, lease, changes) -> None:
        self._run(store._update_running, name, lease, dict(changes))

    def release_for_continuation(self, name, lease, *, now) -> None:
        self.update_running(name, lease, store.continuation_changes(now))

    def finish(self, name, lease, changes, instance_dead_at=None) -> bool:
        instances = self.instances if instance_dead_at is not None else None
        return self._run(store._finish, name, lease, changes, instances, instance_dead_at)

    def get_many(self, names):
        return {name: self.get(name) for name in names}

    def clear_inbox(self, owner, names):
        for name in names:
            self.inbox(owner).document(model.document_id(name)).record = None

    def cancels_held(self, owner):
        return [copy.deepcopy(d.record) for d in self.docs.values()
                if d.record and (d.record.get("lease") or {}).get("owner") == owner
                and d.record.get("cancelRequested")]


def new_store(clock: Callable[[], datetime], name: str = NAME, **params) -> MemoryStore:
    memory = MemoryStore(clock)
    memory.create(model.new_job(name=name, parent=name.rsplit("/", 2)[0],
                                target=name.replace("operations", "jobs"), kind="demo.countdown",
                                params={"steps": 1, **params}, created_by="t@example.com",
                                now=clock()))
    return memory


def errors_of(record, now=T0 + timedelta(seconds=10), document_id=None, **kwargs) -> list[str]:
    if document_id is None and isinstance(record.get("name"), str):
        document_id = model.document_id(record["name"])
    found = check_record(record, now, sweep_interval=SWEEP, document_id=document_id, **kwargs)
    return sorted(v.rule for v in found if v.severity == "error")


def assert_history_clean(memory: MemoryStore) -> None:
    assert memory.history
    for at, record in memory.history:
        assert errors_of(record, now=at) == [], record


# Legitimate paths, written by lib.core.store's transaction bodies.

def succeeded(now, response=None):
    response = {"steps": 1} if response is None else response
    return lambda r: model.succeeded_changes(response, now=now(),
                                             retention=RETENTION)


def failed(now, code=code_pb2.FAILED_PRECONDITION):
    return lambda r: model.failed_changes(code, "broken", now=now(), retention=RETENTION)


def cancelled(now, reason=model.CANCELLED_BY_REQUEST):
    return lambda r: {**model.cancelled_changes(now=now(), retention=RETENTION, reason=reason,
                                                info=model.cancel_info(r)),
                      "cancelAcknowledgeTime": now()}


def continued(now):  # what the store writes when a slice ends
    return store.continuation_changes(now())


def retried(attempt, now):  # what RunningJob.note_retry writes
    return {"attempt": attempt, "statusMessage": "Retrying in 1s after: boom", "updateTime": now()}


def path_queued(m, c):
    pass


def path_cancelled_while_queued(m, c):
    c.advance(1)
    m.cancel(NAME)
    c.advance(1)
    m.cancel(NAME, principal="bob@example.com")  # writes nothing


def path_succeeded(m, c, response=None):
    lease = m.claim(NAME).lease
    c.advance(5)
    m.renew_instance("worker-a", now=c(), lease_seconds=60)
    m.update_running(NAME, lease, {"progressPercent": 50, "statusMessage": "Half.",
                                   "checkpoint": {"step": 1}, "updateTime": c.advance(1)})
    c.advance(1)
    m.finish(NAME, lease, succeeded(c, response))


def path_failed(m, c, code=code_pb2.FAILED_PRECONDITION):
    lease = m.claim(NAME).lease
    c.advance(1)
    m.finish(NAME, lease, failed(c, code))


def path_cancelled_while_running(m, c):
    lease = m.claim(NAME).lease
    m.cancel(NAME, now=c.advance(1))
    m.cancel(NAME, now=c.advance(1))  # writes nothing
    c.advance(1)
    m.finish(NAME, lease, cancelled(c))


def path_retried_then_succeeded(m, c):
    lease = m.claim(NAME).lease
    m.update_running(NAME, lease, retried(2, c))
    m.update_running(NAME, lease, retried(3, c))
    c.advance(1)
    m.finish(NAME, lease, succeeded(c))


def path_continued_then_succeeded(m, c):
    for _ in range(3):
        lease = m.claim(NAME, now=c.advance(1)).lease
        m.update_running(NAME, lease, {"checkpoint": {"step": 1}, "updateTime": c.advance(1)})
        m.update_running(NAME, lease, continued(c))
    lease = m.claim(NAME, now=c.advance(1)).lease
    c.advance(1)
    m.finish(NAME, lease, succeeded(c))


def path_retried_continued_then_cancelled_in_the_queue(m, c):
    lease = m.claim(NAME).lease
    m.update_running(NAME, lease, retried(2, c))
    m.update_running(NAME, lease, continued(c))
    m.cancel(NAME, now=c.advance(1))


def path_cancel_landing_as_a_slice_ends(m, c):
    lease = m.claim(NAME).lease
    m.cancel(NAME, now=c.advance(1))
    m.update_running(NAME, lease, continued(c))  # QUEUED with cancelRequested: legitimate
    lease = m.claim(NAME, now=c.advance(1)).lease
    c.advance(1)
    m.finish(NAME, lease, cancelled(c))


def path_expired_lease_taken_over(m, c):
    old = m.claim(NAME, lease_seconds=1).lease
    new = m.claim(NAME, owner="worker-b", now=c.advance(30)).lease
    assert m.finish(NAME, old, succeeded(c)) is False
    c.advance(1)
    m.finish(NAME, new, succeeded(c))


def path_sweep_cancels_a_dead_workers_operation(m, c):
    lease = m.claim(NAME).lease
    m.cancel(NAME, now=c.advance(1))
    assert m.finish(NAME, lease, cancelled(c, model.CANCEL_FORCED),
                    instance_dead_at=c.advance(100)) is True


def path_sweep_gives_up_on_workers_that_keep_dying(m, c):
    for owner in ("a", "b", "c"):
        lease = m.claim(NAME, owner=owner, now=c.advance(61)).lease
    assert m.finish(NAME, lease, failed(c, code_pb2.ABORTED),
                    instance_dead_at=c.advance(100)) is True


PATHS = {
    "a new job waits in the queue": path_queued,
    "a queued job is cancelled, twice": path_cancelled_while_queued,
    "claimed, renewed, progress, succeeded": path_succeeded,
    "succeeded with an empty response": lambda m, c: path_succeeded(m, c, response={}),
    "failed with the handler's code": path_failed,
    "failed with OK, which is stored as UNKNOWN": lambda m, c: path_failed(m, c, code_pb2.OK),
    "failed with CANCELLED, stored as UNKNOWN": lambda m, c: path_failed(m, c, code_pb2.CANCELLED),
    "cancel requested twice while running, then finished cancelled":
        path_cancelled_while_running,
    "retried twice in place, then succeeded": path_retried_then_succeeded,
    "continued over four invocations, then succeeded": path_continued_then_succeeded,
    "retried, continued, then cancelled in the queue":
        path_retried_continued_then_cancelled_in_the_queue,
    "a cancel landing as a slice ends": path_cancel_landing_as_a_slice_ends,
    "an expired lease taken over by a second worker": path_expired_lease_taken_over,
    "the sweep finishes a dead worker's cancelled operation":
        path_sweep_cancels_a_dead_workers_operation,
    "the sweep gives up on workers that keep dying": path_sweep_gives_up_on_workers_that_keep_dying,
}


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_every_version_a_legitimate_path_writes_breaks_no_rule(path):
    clock = Clock()
    memory = new_store(clock)
    path(memory, clock)
    assert_history_clean(memory)


# Legitimate paths, written by the real worker.

SETTINGS = Settings(heartbeat_seconds=0.01, progress_min_interval_seconds=0,
                    retry_backoff_seconds=0, cancel_listener=False)
_flaky_failures: dict[str, int] = {}


@register("test.invariant_rules.flaky")
def _flaky(ctx, params):
    _flaky_failures[ctx.name] = _flaky_failures.get(ctx.name, 0) + 1
    if _flaky_failures[ctx.name] < 3:
        raise RuntimeError("transient trouble")
    return {"tries": _flaky_failures[ctx.name]}


@register("test.invariant_rules.self_cancel")
def _self_cancel(ctx, params):
    raise exceptions.Cancelled("the backend cancelled our call")


def run_worker(memory: MemoryStore, name: str = NAME, settings: Settings = SETTINGS) -> list[str]:
    worker = OperationWorker(memory, settings)
    outcomes = [worker.run(name)]
    while outcomes[-1] == "continued":
        outcomes.append(worker.run(name))
    return outcomes


def with_kind(memory: MemoryStore, kind: str) -> MemoryStore:
    memory.docs[NAME].record["kind"] = kind
    memory.history.clear()
    memory.create(memory.docs[NAME].record)
    return memory


@pytest.mark.parametrize(("params", "kind", "settings", "outcomes", "state"), [
    ({"steps": 3, "stepSeconds": 0}, None, SETTINGS, ["succeeded"], "SUCCEEDED"),
    ({"steps": 3, "stepSeconds": 0, "failAtStep": 2}, None, SETTINGS, ["failed"], "FAILED"),
    ({"steps": 3, "stepSeconds": 0}, None, Settings(slice_seconds=1e-9, heartbeat_seconds=0.01,
                                                    cancel_listener=False),
     ["continued"] * 3 + ["succeeded"], "SUCCEEDED"),
    ({}, "test.invariant_rules.flaky", SETTINGS, ["succeeded"], "SUCCEEDED"),
    ({}, "no.such.kind", SETTINGS, ["failed"], "FAILED"),
], ids=["succeeds", "fails at a step", "continues over four invocations",
        "retries twice in place", "finds no handler for its kind"])
def test_every_version_the_worker_writes_breaks_no_rule(params, kind, settings, outcomes, state):
    memory = new_store(model.utcnow, **params)
    if kind:
        with_kind(memory, kind)
    assert run_worker(memory, settings=settings) == outcomes
    assert memory.get(NAME)["state"] == state
    assert_history_clean(memory)


def test_a_cancel_the_worker_obeys_breaks_no_rule():
    memory = new_store(model.utcnow, steps=1, stepSeconds=30)

    def cancel_when_running():
        deadline = time.monotonic() + 10
        while memory.get(NAME)["state"] != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.005)
        memory.cancel(NAME)

    thread = threading.Thread(target=cancel_when_running)
    thread.start()
    assert run_worker(memory) == ["cancelled"]
    thread.join()
    assert_history_clean(memory)


def test_a_handler_raising_cancelled_on_its_own_breaks_no_rule():
    memory = with_kind(new_store(model.utcnow), "test.invariant_rules.self_cancel")
    run_worker(memory)
    assert_history_clean(memory)


# One broken record per rule.

def legit(state: str) -> dict:
    """The last version of a legitimate record in ``state`` (at T0 + 3 s)."""
    clock = Clock()
    memory = new_store(clock)
    if state == "QUEUED":
        return memory.get(NAME)
    if state == "CANCELLED":
        path_cancelled_while_queued(memory, clock)
        return memory.get(NAME)
    lease = memory.claim(NAME).lease
    clock.advance(3)
    if state == "SUCCEEDED":
        memory.finish(NAME, lease, succeeded(clock))
    elif state == "FAILED":
        memory.finish(NAME, lease, failed(clock))
    return memory.get(NAME)


def broken(state: str, changes: dict) -> dict:
    record = legit(state)
    for key, value in changes.items():
        if value is DROP:
            record.pop(key)
        else:
            record[key] = value
    return record


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


ERROR_2 = {"code": 2, "message": "unknown"}
CASES = [
    ("a record without createTime", "QUEUED", {"createTime": DROP}, {"FIELD_MISSING"}),
    ("a record without attempt", "RUNNING", {"attempt": DROP}, {"FIELD_MISSING"}),
    ("a createTime that is a string", "QUEUED", {"createTime": "2025-03-01"}, {"BAD_TIMESTAMP"}),
    ("an endTime without a time zone", "SUCCEEDED",
     {"endTime": datetime(2025, 3, 1, 12, 0, 3)}, {"BAD_TIMESTAMP"}),
    ("a name with a space", "QUEUED", {"name": f"{PARENT}/operations/a b"}, {"INVALID_NAME"}),
    ("a name that is a number", "QUEUED", {"name": 7}, {"INVALID_NAME"}),
    ("a parent that does not prefix the name", "QUEUED", {"parent": "projects/q/locations/us"},
     {"PARENT_MISMATCH"}),
    ("a parent that prefixes the name but not at a segment", "QUEUED",
     {"parent": f"{PARENT}/operations/op"}, {"PARENT_MISMATCH"}),
    ("an unknown state", "QUEUED", {"state": "PAUSED"}, {"UNKNOWN_STATE"}),
    ("a QUEUED record marked done", "QUEUED", {"done": True}, {"DONE_STATE_MISMATCH"}),
    ("a SUCCEEDED record not marked done", "SUCCEEDED", {"done": False},
     {"DONE_STATE_MISMATCH"}),
    ("done with both a response and an error", "SUCCEEDED", {"error": ERROR_2},
     {"DONE_WITH_BOTH_RESULTS"}),
    ("done with neither a response nor an error", "SUCCEEDED", {"response": DROP},
     {"DONE_WITHOUT_RESULT"}),
    ("SUCCEEDED with an error only", "SUCCEEDED", {"response": DROP, "error": ERROR_2},
     {"SUCCEEDED_WITHOUT_RESPONSE"}),
    ("FAILED with a response only", "FAILED", {"error": DROP, "response": {}},
     {"FAILED_WITHOUT_ERROR"}),
    ("FAILED with code 0", "FAILED", {"error": {"code": 0}}, {"FAILED_WITH_OK_OR_CANCELLED_CODE"}),
    ("FAILED with code 1", "FAILED", {"error": {"code": 1}}, {"FAILED_WITH_OK_OR_CANCELLED_CODE"}),
    ("CANCELLED with code 2", "CANCELLED", {"error": ERROR_2}, {"CANCELLED_WITHOUT_CODE_1"}),
    ("CANCELLED with a response only", "CANCELLED", {"error": DROP, "response": {}},
     {"CANCELLED_WITHOUT_CODE_1"}),
    ("SUCCEEDED with a response and code 1", "SUCCEEDED", {"error": {"code": 1}},
     {"DONE_WITH_BOTH_RESULTS", "CODE_1_NOT_CANCELLED"}),
    ("RUNNING with code 1", "RUNNING", {"error": {"code": 1}},
     {"PENDING_WITH_RESULT", "CODE_1_NOT_CANCELLED"}),
    ("an error code that is a string", "FAILED", {"error": {"code": "x"}}, {"RESULT_MALFORMED"}),
    ("an error code beyond google.rpc.Code", "FAILED", {"error": {"code": 99}},
     {"RESULT_MALFORMED"}),
    ("a response that is a list", "SUCCEEDED", {"response": [1]}, {"RESULT_MALFORMED"}),
    ("RUNNING with a response", "RUNNING", {"response": {}}, {"PENDING_WITH_RESULT"}),
    ("QUEUED with an endTime", "QUEUED", {"endTime": at(1)}, {"PENDING_WITH_END_TIME"}),
    ("RUNNING with an expireTime, which TTL would delete", "RUNNING", {"expireTime": at(99)},
     {"PENDING_WITH_END_TIME"}),
    ("SUCCEEDED without endTime", "SUCCEEDED", {"endTime": DROP}, {"DONE_WITHOUT_END_TIME"}),
    ("CANCELLED without expireTime", "CANCELLED", {"expireTime": DROP},
     {"DONE_WITHOUT_EXPIRE_TIME"}),
    ("an endTime 2 s before createTime", "FAILED", {"endTime": at(-2)}, {"END_BEFORE_CREATE"}),
    ("an updateTime 2 s before createTime", "RUNNING", {"updateTime": at(-2)},
     {"UPDATE_BEFORE_CREATE"}),
    ("an expireTime before endTime", "SUCCEEDED", {"expireTime": at(1)}, {"EXPIRE_BEFORE_END"}),
    ("RUNNING without a lease", "RUNNING", {"lease": None}, {"RUNNING_WITHOUT_LEASE"}),
    ("a lease without a token", "RUNNING", {"lease": {"owner": "w", "expireTime": at(60)}},
     {"LEASE_MALFORMED"}),
    ("a lease with token 0", "RUNNING", {"lease": {"owner": "w", "token": 0,
                                                   "expireTime": at(60)}}, {"LEASE_MALFORMED"}),
    ("QUEUED with a lease", "QUEUED", {"lease": {"owner": "w", "token": 1, "expireTime": at(60)}},
     {"LEASE_NOT_RELEASED"}),
    ("SUCCEEDED with a lease", "SUCCEEDED",
     {"lease": {"owner": "w", "token": 1, "expireTime": at(60)}}, {"LEASE_NOT_RELEASED"}),
    ("a negative attempt", "QUEUED", {"attempt": -1}, {"ATTEMPT_INVALID"}),
    ("an attempt that is a string", "RUNNING", {"attempt": "1"}, {"ATTEMPT_INVALID"}),
    ("fewer attempts than continuations", "RUNNING", {"continuations": 2},
     {"ATTEMPT_BELOW_CONTINUATIONS"}),
    ("RUNNING with attempt 0", "RUNNING", {"attempt": 0}, {"CLAIM_NOT_COUNTED"}),
    ("SUCCEEDED with its one claim counted as a continuation", "SUCCEEDED",
     {"continuations": 1}, {"CLAIM_NOT_COUNTED"}),
    ("QUEUED with attempt 1 and no continuation", "QUEUED", {"attempt": 1},
     {"QUEUED_CLAIMED_WITHOUT_CONTINUATION"}),
    ("progress 101", "RUNNING", {"progressPercent": 101}, {"PROGRESS_OUT_OF_RANGE"}),
    ("progress -1", "QUEUED", {"progressPercent": -1}, {"PROGRESS_OUT_OF_RANGE"}),
    ("progress as a string", "RUNNING", {"progressPercent": "50"}, {"PROGRESS_OUT_OF_RANGE"}),
    ("SUCCEEDED at 99 percent", "SUCCEEDED", {"progressPercent": 99},
     {"SUCCEEDED_PROGRESS_NOT_100"}),
    ("CANCELLED with no cancel requested (what the worker bug above writes)", "CANCELLED",
     {"cancelRequested": False, "cancelRequestTime": DROP, "cancelRequestedBy": DROP},
     {"CANCELLED_WITHOUT_REQUEST"}),
    ("a cancel requested with no time or principal", "RUNNING", {"cancelRequested": True},
     {"CANCEL_FIELDS_DISAGREE"}),
    ("a cancel time without a cancel requested", "RUNNING",
     {"cancelRequestTime": at(1), "cancelRequestedBy": "a@example.com"},
     {"CANCEL_FIELDS_DISAGREE"}),
    ("an acknowledgement without a cancel requested", "RUNNING",
     {"cancelAcknowledgeTime": at(1)}, {"ACK_WITHOUT_REQUEST"}),
    ("acknowledged 5 s before it was requested", "CANCELLED",
     {"cancelAcknowledgeTime": at(-4)}, {"CANCEL_TIMES_OUT_OF_ORDER"}),
    ("CANCELLED with no ErrorInfo saying why", "CANCELLED",
     {"error": {"code": 1, "message": "Operation was cancelled."}},
     {"CANCELLED_WITHOUT_REASON"}),
]


@pytest.mark.parametrize(("state", "changes", "rules"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_broken_record_breaks_exactly_its_rules(state, changes, rules):
    assert errors_of(legit(state)) == [], "the unbroken record must pass"
    assert set(errors_of(broken(state, changes))) == rules


def test_every_rule_of_the_checker_has_a_broken_record_here():
    source = Path(invariants.__file__).read_text()
    rules = set(re.findall(r'yield "([A-Z0-9_]+)"', source))
    covered = {rule for case in CASES for rule in case[3]}
    assert rules - covered == {"DOCUMENT_ID_MISMATCH", "LEASE_STUCK",
                               "LEASE_WITHOUT_INSTANCE"}  # each tested below


def test_a_document_id_that_is_not_its_names_breaks_a_rule():
    assert errors_of(legit("QUEUED"), document_id="op-1") == ["DOCUMENT_ID_MISMATCH"]
    assert errors_of(legit("QUEUED"), document_id=NAME.replace("/", "%2F")) == []


def test_a_lease_is_stuck_once_its_instance_expired_longer_ago_than_sweep_and_grace():
    record = legit("RUNNING")  # claimed at T0 by an instance with a 60 s lease
    expire = T0 + timedelta(seconds=60)
    instances = {"worker-a": expire}
    limit = expire + SWEEP + DEFAULT_GRACE
    assert errors_of(record, now=limit, instances=instances) == []
    assert errors_of(record, now=limit + timedelta(seconds=1),
                     instances=instances) == ["LEASE_STUCK"]
    short = check_record(record, expire + timedelta(seconds=20), sweep_interval=timedelta(
        seconds=10), grace=timedelta(seconds=5), document_id=model.document_id(NAME),
        instances=instances)
    assert [v.rule for v in short] == ["LEASE_STUCK"]
    assert short[0].name == NAME and "expired 0:00:20 ago" in short[0].message


def test_a_running_operation_under_an_instance_without_a_lease_breaks_a_rule():
    assert errors_of(legit("RUNNING"), instances={}) == ["LEASE_WITHOUT_INSTANCE"]
    assert errors_of(legit("RUNNING")) == [], "without the instances only the shape is checked"


def test_times_within_the_clock_skew_of_two_instances_break_no_rule():
    record = broken("FAILED", {"endTime": T0 - CLOCK_SKEW, "updateTime": T0 - CLOCK_SKEW})
    assert errors_of(record) == []


def test_an_unknown_kind_is_a_warning_not_a_violation():
    record = broken("QUEUED", {"kind": "acme.export"})
    found = check_record(record, T0, sweep_interval=SWEEP)
    assert found == [Violation(NAME, "UNKNOWN_KIND", "kind 'acme.export' is not registered here",
                               "warning")]
    assert check_record(record, T0, sweep_interval=SWEEP, known_kinds={"acme.export"}) == []


def test_a_record_with_no_name_is_labelled_by_its_document_id():
    found = check_record({}, T0, sweep_interval=SWEEP, document_id="doc-7")
    assert {(v.name, v.rule) for v in found} == {("doc-7", "FIELD_MISSING")}


SEED_SHAPES = {
    "operations/{id}": ("operations/abc", "operations"),
    "projects/P/locations/L/operations/{id}": ("projects/p/locations/l/operations/abc",
                                               "projects/p/locations/l"),
    "projects/P/operations/{id}": ("projects/p/operations/abc", "projects/p"),
}


@pytest.mark.parametrize(("name", "parent"), SEED_SHAPES.values(), ids=SEED_SHAPES.keys())
def test_every_seed_name_shape_breaks_no_rule_queued_or_cancelled(name, parent):
    queued = model.new_job(name=name, parent=parent, target="jobs/abc", kind="demo.countdown",
                           params={"steps": 1}, created_by="t@example.com", now=T0)
    assert errors_of(queued) == []
    cancelled = {**queued, **model.cancel_changes(queued, principal="t@example.com",
                                                  now=at(1), retention=RETENTION,
                                                  reason="why")}
    assert errors_of(cancelled) == []
    assert errors_of({**queued, "parent": "projects/elsewhere"}) == ["PARENT_MISMATCH"]

"""The invariant checker: operations whose documents break the model's rules.

``check_record`` is pure: one document in, the rules it breaks out. Each rule
names a state that ``lib.core.model``, ``lib.core.store`` and ``lib.jobs.worker`` never write,
so a violation means a bug, a hand edit or a lost write. A kind the registry
does not know is only a warning (another deployment may serve it).
``python -m lib.tools.invariants`` checks a collection and prints a JSON summary;
exit 0: nothing broken, 1: violations, 2: could not check.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions
from google.auth.exceptions import GoogleAuthError

from lib.core import model
from lib.core.config import ConfigError, Settings
from lib.core.model import State
from lib.kinds import registered

# createTime and endTime may come from two instances' clocks (the HTTP
# function's and the worker's): a little disagreement is not a broken record.
CLOCK_SKEW = timedelta(seconds=1)
DEFAULT_GRACE = timedelta(seconds=Settings.lease_seconds)
_STATES = frozenset(state.value for state in State)
# States only a claim reaches; that claim is counted in `attempt`.
_CLAIMED = frozenset({State.RUNNING, State.SUCCEEDED, State.FAILED})
# What model.new_job writes and nothing ever removes.
_REQUIRED = ("name", "parent", "state", "done", "kind", "attempt", "progressPercent",
             "cancelRequested", "createTime", "updateTime")
_TIMES = ("createTime", "updateTime", "endTime", "expireTime", "cancelRequestTime",
          "cancelAcknowledgeTime", "deadline", "claimTime")
_PAGE = 500
Problem = tuple[str, str]


@dataclass(frozen=True)
class Violation:
    """One broken rule of one operation; ``severity`` is "error" or "warning"."""

    name: str
    rule: str
    message: str
    severity: str = "error"


@dataclass
class Report:
    """What ``check_collection`` found: counts by state, violations, warnings."""

    operations: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"operations": self.operations, "by_state": dict(sorted(self.by_state.items())),
                "violations": [asdict(v) for v in self.violations],
                "warnings": [asdict(v) for v in self.warnings]}


def check_record(record: Mapping[str, Any], now: datetime, *, sweep_interval: timedelta,
                 grace: timedelta = DEFAULT_GRACE, document_id: str | None = None,
                 known_kinds: Collection[str] | None = None,
                 instances: Mapping[str, datetime] | None = None) -> list[Violation]:
    """The rules ``record`` breaks as of ``now``.

    Args:
        sweep_interval: how often the recovery sweep runs. A RUNNING lease that
            expired more than ``sweep_interval + grace`` ago is stuck: the sweep
            should have re-published it by then, and a new claim renewed it.
        grace: publish-to-claim slack (default: the default lease length).
        document_id: the Firestore document id, checked against the name.
        known_kinds: the kinds served (default: ``lib.kinds.registered()``).
        instances: worker instance → when its lease expires (the
            ``{collection}-instances`` documents); without it, leases are
            checked for their shape only.
    """
    name = record.get("name")
    label = name if isinstance(name, str) else (document_id or "")
    found = [Violation(label, rule, message) for rule, message
             in _problems(record, now, sweep_interval + grace, document_id, instances)]
    kind, kinds = record.get("kind"), registered() if known_kinds is None else known_kinds
    if kind is not None and not (isinstance(kind, str) and kind in kinds):
        found.append(Violation(label, "UNKNOWN_KIND", f"kind {kind!r} is not registered here",
                               "warning"))
    return found


def _problems(r: Mapping[str, Any], now: datetime, stuck_after: timedelta,
              document_id: str | None,
              instances: Mapping[str, datetime] | None) -> Iterator[Problem]:
    missing = [key for key in _REQUIRED if r.get(key) is None]
    if missing:
        yield "FIELD_MISSING", f"missing {', '.join(missing)}"
    bad = [key for key in _TIMES if r.get(key) is not None and _time(r, key) is None]
    if bad:
        yield "BAD_TIMESTAMP", f"not a timestamp with a time zone: {', '.join(bad)}"
    yield from _names(r, document_id)
    raw = r.get("state")
    state = raw if isinstance(raw, str) and raw in _STATES else None
    if raw is not None and state is None:
        yield "UNKNOWN_STATE", f"state {raw!r} is none of {', '.join(sorted(_STATES))}"
    done = state in model.DONE_STATES if state else r.get("done") is True
    if state and r.get("done") is not done:
        yield "DONE_STATE_MISMATCH", f"done is {r.get('done')!r} but state is {state}"
    yield from _results(r, state, done)
    yield from _times(r, done)
    yield from _lease(r, state, now, stuck_after, instances)
    yield from _attempts(r, state)
    yield from _progress_and_cancel(r, state)


def _names(r: Mapping[str, Any], document_id: str | None) -> Iterator[Problem]:
    name, parent = r.get("name"), r.get("parent")
    if not isinstance(name, str):
        if name is not None:
            yield "INVALID_NAME", f"name is a {type(name).__name__}, not a string"
        return
    try:
        model.check_name(name)
    except model.InvalidName as exc:
        yield "INVALID_NAME", str(exc)
    if document_id is not None and document_id != model.document_id(name):
        yield "DOCUMENT_ID_MISMATCH", f"document id {document_id!r} is not that of the name"
    if parent is not None and not (isinstance(parent, str) and name.startswith(parent + "/")):
        yield "PARENT_MISMATCH", f"parent {parent!r} does not prefix the name"


def _results(r: Mapping[str, Any], state: str | None, done: bool) -> Iterator[Problem]:
    response, error = r.get("response"), r.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    if (error is not None and (isinstance(code, bool) or code not in range(17))) or (
            response is not None and not isinstance(response, Mapping)):
        yield "RESULT_MALFORMED", ("error must be {code: 0..16, message} and response an "
                                   f"object: error={error!r}, response={response!r}")
    if not done:
        if response is not None or error is not None:
            yield "PENDING_WITH_RESULT", "not done, yet it has a response or an error"
    elif response is not None and error is not None:
        yield "DONE_WITH_BOTH_RESULTS", "done with both a response and an error"
    elif response is None and error is None:
        yield "DONE_WITHOUT_RESULT", "done with neither a response nor an error"
    elif state == State.SUCCEEDED and response is None:
        yield "SUCCEEDED_WITHOUT_RESPONSE", "SUCCEEDED with an error instead of a response"
    elif state == State.FAILED and error is None:
        yield "FAILED_WITHOUT_ERROR", "FAILED with a response instead of an error"
    elif state == State.CANCELLED and code != 1:
        yield "CANCELLED_WITHOUT_CODE_1", f"CANCELLED with error.code {code!r}, not 1"
    if state == State.FAILED and code in (0, 1):
        yield "FAILED_WITH_OK_OR_CANCELLED_CODE", f"FAILED with error.code {code}"
    elif code == 1 and state != State.CANCELLED:
        yield "CODE_1_NOT_CANCELLED", f"error.code 1 (cancelled) but state is {state}"
    if state == State.SUCCEEDED and r.get("progressPercent") != 100:
        yield "SUCCEEDED_PROGRESS_NOT_100", f"progressPercent {r.get('progressPercent')!r}"


def _times(r: Mapping[str, Any], done: bool) -> Iterator[Problem]:
    created, updated, ended, expires = (_time(r, key) for key in _TIMES[:4])
    if done and r.get("endTime") is None:
        yield "DONE_WITHOUT_END_TIME", "done without endTime"
    if done and r.get("expireTime") is None:
        yield "DONE_WITHOUT_EXPIRE_TIME", "done without expireTime: TTL never deletes it"
    if not done and (r.get("endTime") is not None or r.get("expireTime") is not None):
        yield "PENDING_WITH_END_TIME", "not done, yet it has an endTime or expireTime"
    if created and updated and updated < created - CLOCK_SKEW:
        yield "UPDATE_BEFORE_CREATE", f"updateTime {updated} < createTime {created}"
    if created and ended and ended < created - CLOCK_SKEW:
        yield "END_BEFORE_CREATE", f"endTime {ended} < createTime {created}"
    if ended and expires and expires < ended:
        yield "EXPIRE_BEFORE_END", f"expireTime {expires} < endTime {ended}"


def _lease(r: Mapping[str, Any], state: str | None, now: datetime, stuck_after: timedelta,
           instances: Mapping[str, datetime] | None) -> Iterator[Problem]:
    lease = r.get("lease")
    if lease is None:
        if state == State.RUNNING:
            yield "RUNNING_WITHOUT_LEASE", "RUNNING without a lease: the sweep never finds it"
        return
    if state is not None and state != State.RUNNING:
        yield "LEASE_NOT_RELEASED", f"{state} but a lease is still set"
    if not (isinstance(lease, Mapping) and isinstance(lease.get("owner"), str)
            and _count(lease.get("token")) and lease["token"] >= 1):
        yield "LEASE_MALFORMED", f"lease must be {{owner, token >= 1}}: {lease!r}"
        return
    if state != State.RUNNING or instances is None:
        return
    # Liveness is the instance's lease (one document per worker process).
    expires = instances.get(lease["owner"])
    if expires is None:
        yield "LEASE_WITHOUT_INSTANCE", (f"RUNNING under instance {lease['owner']!r}, which "
                                         "has no lease document: the sweep never finds it")
    elif now - expires > stuck_after:
        yield "LEASE_STUCK", (f"RUNNING under an instance lease that expired {now - expires} "
                              f"ago (more than {stuck_after}): no sweep or worker took it over")


def _attempts(r: Mapping[str, Any], state: str | None) -> Iterator[Problem]:
    attempt, continuations = r.get("attempt"), r.get("continuations", 0)
    if attempt is None:
        return
    if not (_count(attempt) and _count(continuations)):
        yield "ATTEMPT_INVALID", (f"attempt {attempt!r} and continuations {continuations!r} "
                                  "must be non-negative integers")
        return
    # Each claim (and retry) adds 1 to attempt; each continuation follows a claim.
    if attempt < continuations:
        yield "ATTEMPT_BELOW_CONTINUATIONS", f"attempt {attempt} < continuations {continuations}"
    elif state in _CLAIMED and attempt == continuations:
        yield "CLAIM_NOT_COUNTED", (f"{state} with attempt {attempt} and {continuations} "
                                    "continuations: its claim was not counted")
    if state == State.QUEUED and attempt > 0 and continuations == 0:
        yield "QUEUED_CLAIMED_WITHOUT_CONTINUATION", (
            f"QUEUED with attempt {attempt} but no continuation: only a slice end re-queues")


def _progress_and_cancel(r: Mapping[str, Any], state: str | None) -> Iterator[Problem]:
    progress = r.get("progressPercent")
    if progress is not None and (isinstance(progress, bool) or not isinstance(
            progress, int | float) or not 0 <= progress <= 100):
        yield "PROGRESS_OUT_OF_RANGE", f"progressPercent {progress!r} is not in 0..100"
    requested = r.get("cancelRequested")
    if state == State.CANCELLED and requested is not True:
        yield "CANCELLED_WITHOUT_REQUEST", "CANCELLED but cancelRequested is not true"
    recorded = r.get("cancelRequestTime") is not None and r.get("cancelRequestedBy") is not None
    if requested is not None and (requested is True) != recorded:
        yield "CANCEL_FIELDS_DISAGREE", (f"cancelRequested is {requested!r}; cancelRequestTime "
                                         "and cancelRequestedBy disagree")
    acknowledged = _time(r, "cancelAcknowledgeTime")
    if acknowledged is not None and requested is not True:
        yield "ACK_WITHOUT_REQUEST", "cancelAcknowledgeTime without a cancel requested"
    times = [_time(r, key) for key in ("cancelRequestTime", "cancelAcknowledgeTime", "endTime")]
    known = [t for t in times if t is not None]
    if requested is True and any(b < a - CLOCK_SKEW for a, b in itertools.pairwise(known)):
        yield "CANCEL_TIMES_OUT_OF_ORDER", ("cancel requested, acknowledged and ended times "
                                            f"are out of order: {times}")
    error = r.get("error")
    code, reason = (error.get("code"), error.get("reason")) if isinstance(error, Mapping) else (
        None, None)
    if state == State.CANCELLED and code == 1 and reason not in (model.CANCELLED_BY_REQUEST,
                                                                 model.CANCEL_FORCED):
        yield "CANCELLED_WITHOUT_REASON", (f"CANCELLED with ErrorInfo reason {reason!r}, not "
                                           f"{model.CANCELLED_BY_REQUEST} or {model.CANCEL_FORCED}")


def _time(record: Mapping[str, Any], key: str) -> datetime | None:
    value = record.get(key)
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_collection(client: Any, collection: str, now: datetime, sweep_interval: timedelta,
                     *, grace: timedelta = DEFAULT_GRACE,
                     known_kinds: Collection[str] | None = None) -> Report:
    """Checks every document of ``collection`` (``client``: a Firestore client),
    read in pages by document id so that no one query runs into its deadline."""
    kinds = set(registered()) if known_kinds is None else known_kinds
    instances = {snapshot.get("owner"): snapshot.get("expireTime") for snapshot
                 in client.collection(f"{collection}-instances").stream()}
    report, last = Report(), None
    query = client.collection(collection).order_by("__name__").limit(_PAGE)
    while True:
        snapshots = list((query if last is None else query.start_after(last)).stream())
        for snapshot in snapshots:
            record = snapshot.to_dict() or {}
            state = record.get("state")
            key = state if isinstance(state, str) else "MISSING"
            report.operations += 1
            report.by_state[key] = report.by_state.get(key, 0) + 1
            for found in check_record(record, now, sweep_interval=sweep_interval, grace=grace,
                                      document_id=snapshot.id, known_kinds=kinds,
                                      instances=instances):
                (report.warnings if found.severity == "warning" else report.violations
                 ).append(found)
        if len(snapshots) < _PAGE:
            return report
        last = snapshots[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lib.tools.invariants",
        description="Checks every operation of OPERATIONS_COLLECTION in GOOGLE_CLOUD_PROJECT "
                    "(on the emulator at FIRESTORE_EMULATOR_HOST, if set).")
    parser.add_argument("--sweep-interval-seconds", type=float, default=60.0,
                        help="how often the recovery sweep runs (default: 60)")
    parser.add_argument("--grace-seconds", type=float, default=None,
                        help="slack after the sweep interval (default: LEASE_SECONDS)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"invariants: {exc}", file=sys.stderr)
        return 2
    from google.cloud import firestore  # as in main.py: the client is built on use

    grace = settings.lease_seconds if args.grace_seconds is None else args.grace_seconds
    try:
        report = check_collection(firestore.Client(project=settings.project), settings.collection,
                                  model.utcnow(), timedelta(seconds=args.sweep_interval_seconds),
                                  grace=timedelta(seconds=grace))
    except exceptions.GoogleAPICallError as exc:
        print(f"invariants: cannot read {settings.collection}: {exc.message}", file=sys.stderr)
        return 2
    except GoogleAuthError as exc:
        print(f"invariants: no credentials: {type(exc).__name__}", file=sys.stderr)
        return 2
    print(json.dumps({"project": settings.project, "collection": settings.collection,
                      **report.to_json()}, indent=2))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())

"""list_page_ratio: latency of page 50 ÷ page 1 of a filtered list over HTTP.

10,000 operations under one parent, seeded straight into the stack's
collection with batch writes (records from ``lib.core.model.new_job``), half of them
of the kind the filter selects, each a millisecond newer than the last. The
bench walks the pages with ``nextPageToken`` once, then fetches page 1 and page
50 (its token reused) alternately, each next to the same Firestore query made
directly (parent and kind equalities, newest first, keyset cursor), which shows
what the emulator itself charges for a deep page. Beside them, the first page
of a filter the service cannot push into the query (``NOT``/``OR``, matching
none of them): ``list_unindexed_first_page_ms`` and its ratio to page 1.
While ListOperations answers 501 the figure is ``None``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from bench.measure import median, timed
from bench.stack import BenchStack, job_record
from lib.core import model

PARENT = "projects/bench-list/locations/us"
FILTER = 'metadata.kind = "demo.countdown"'
# NOT and OR cannot go into the Firestore query: the service scans. It matches
# none of the 10,000 operations, the worst case for a scan.
UNINDEXED_FILTER = 'NOT (metadata.kind = "demo.countdown" OR metadata.kind = "bench.other")'
OTHER_KIND = "bench.other"


def _page(stack: BenchStack, page_size: int, token: str | None,
          filter_: str = FILTER) -> tuple[float, Any]:
    query: dict[str, Any] = {"pageSize": page_size, "filter": filter_}
    if token:
        query["pageToken"] = token
    url = f"{stack.url}/v1/{PARENT}/operations?{urlencode(query)}"
    return timed(lambda: stack.session().get(url, headers=stack.auth(), timeout=60))


def _direct_page(stack: BenchStack, page_size: int, after: int | None) -> float:
    """The page's query made with the client; ``after``: the seeded index the
    page starts after (None for page 1)."""
    collection = stack.client.collection(stack.collection)
    query = (collection.where(filter=FieldFilter("parent", "==", PARENT))
             .where(filter=FieldFilter("kind", "==", "demo.countdown"))
             .order_by("createTime", direction=firestore.Query.DESCENDING)
             .order_by("__name__", direction=firestore.Query.DESCENDING))
    if after is not None:
        last = stack.ref(_name(after)).get()
        query = query.start_after(last)
    seconds, snapshots = timed(lambda: list(query.limit(page_size + 1).stream()))
    if len(snapshots) != page_size + 1:
        raise RuntimeError(f"direct list query returned {len(snapshots)} documents")
    return seconds


def _name(i: int) -> str:
    return f"{PARENT}/operations/list-{i:05d}"


def list_page_ratio(stack: BenchStack, total: int, page_size: int, target_page: int,
                    repeats: int) -> tuple[dict[str, float | None], str | None]:
    """The figures, and a note when the endpoint cannot be measured yet."""
    _, probe = _page(stack, page_size, None)
    if probe.status_code == 501:
        return {"list_page_ratio": None}, "ListOperations: not implemented yet (501)"
    if probe.status_code != 200:
        return {"list_page_ratio": None}, (
            f"ListOperations answered {probe.status_code}: {probe.text[:200]}")

    base = model.utcnow() - timedelta(days=1)
    stack.seed(
        job_record(_name(i), base + timedelta(milliseconds=i),
                   kind="demo.countdown" if i % 2 == 0 else OTHER_KIND)
        for i in range(total))

    tokens: list[str | None] = [None]
    walk: list[float] = []
    for page in range(1, target_page + 1):
        seconds, response = _page(stack, page_size, tokens[-1])
        if response.status_code != 200:
            return {"list_page_ratio": None}, (
                f"ListOperations page {page} answered {response.status_code}: "
                f"{response.text[:200]}")
        body = response.json()
        if len(body.get("operations", [])) != page_size or not body.get("nextPageToken"):
            return {"list_page_ratio": None}, (
                f"ListOperations page {page} held {len(body.get('operations', []))} "
                f"operations (expected {page_size} and a next page)")
        walk.append(seconds)
        tokens.append(body["nextPageToken"])
        first_name = body["operations"][0]["name"]

    # Matching documents are the even indexes, newest (highest) first: page N
    # starts after the ((N - 1) * size)-th of them.
    newest = total - 1 if (total - 1) % 2 == 0 else total - 2
    after_last = newest - 2 * ((target_page - 1) * page_size - 1)
    if first_name != _name(after_last - 2):
        return {"list_page_ratio": None}, (
            f"page {target_page} starts with {first_name}, not {_name(after_last - 2)}: "
            "the direct baseline would not be the same page")
    first: list[float] = []
    last: list[float] = []
    direct_first: list[float] = []
    direct_last: list[float] = []
    unindexed: list[float] = []
    unindexed_sizes: list[int] = []
    note = None
    for i in range(repeats):
        seconds, response = _page(stack, page_size, None, UNINDEXED_FILTER)
        if response.status_code == 200:
            unindexed.append(seconds)
            unindexed_sizes.append(len(response.json().get("operations", [])))
        direct_first.append(_direct_page(stack, page_size, None))
        order = [(None, first), (tokens[target_page - 1], last)]
        if i % 2:
            order.reverse()
        for token, into in order:
            seconds, response = _page(stack, page_size, token)
            if response.status_code != 200:
                note = f"a reused page token answered {response.status_code}; walk timings only"
                break
            into.append(seconds)
        direct_last.append(_direct_page(stack, page_size, after_last))
        if note:
            first, last = [walk[0]], [walk[-1]]
            break
    extra: dict[str, float | None] = {}
    if unindexed:
        extra = {"list_unindexed_first_page_ms": median(unindexed) * 1e3,
                 "list_unindexed_first_page_size": median(unindexed_sizes),
                 "list_unindexed_vs_page1_ratio": median(unindexed) / median(first)}
    return {
        **extra,
        "list_page1_ms": median(first) * 1e3,
        f"list_page{target_page}_ms": median(last) * 1e3,
        "list_page_ratio": median(last) / median(first),
        "list_direct_page1_ms": median(direct_first) * 1e3,
        f"list_direct_page{target_page}_ms": median(direct_last) * 1e3,
    }, note

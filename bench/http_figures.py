"""Figures over HTTP against the running HTTP function, each next to the same
Firestore work done directly with google-cloud-firestore on the same emulator.

- cancel_overhead_ratio: median cancel over HTTP ÷ median direct transaction
  (read + update in ``@firestore.transactional``, the fields a cancel writes).
- get_overhead_ratio: median GET over HTTP ÷ median direct document read.
- cancel_throughput_ratio: cancels/s over HTTP at 16 clients ÷ direct
  transactions/s at 16 threads, every call on an operation of its own.
- rss_growth_ratio: VmRSS of the function's gunicorn worker after all the mixed
  requests ÷ after the first 1,000.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore

from bench.measure import concurrent_rate, interleaved, median
from bench.stack import BenchStack, done_record, rss_kib, running_record
from lib.core import model

PRINCIPAL = "dev@example.com"
CLIENTS = 16


@dataclass
class HttpResults:
    figures: dict[str, float | None] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)  # ms, for the chart
    rss_curve: list[tuple[int, float]] = field(default_factory=list)  # (requests, MiB)


@firestore.transactional
def direct_cancel(transaction: Any, ref: Any, principal: str) -> None:
    """The cancel transaction's shape, made with the client alone: read, then update."""
    snapshot = ref.get(transaction=transaction)
    if not snapshot.exists:
        raise RuntimeError("seeded operation missing")
    now = model.utcnow()
    transaction.update(ref, {"cancelRequested": True, "cancelRequestTime": now,
                             "cancelRequestedBy": principal, "statusMessage": "Cancelling.",
                             "updateTime": now})


def _names(prefix: str, count: int) -> list[str]:
    return [f"projects/bench/locations/us/operations/{prefix}-{i:05d}" for i in range(count)]


def _expect(response: Any, status: int = 200) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.path_url}: "
                           f"{response.status_code} {response.text[:200]}")


def latency(stack: BenchStack, samples: int, warmup: int, out: HttpResults) -> None:
    """cancel_overhead_ratio and get_overhead_ratio, samples interleaved with their baseline."""
    total = samples + warmup
    http_ops, direct_ops = _names("lat-http", total), _names("lat-direct", total)
    stack.seed(running_record(name, model.utcnow()) for name in http_ops + direct_ops)
    session, headers = stack.session(), stack.auth()

    def http_cancel(i: int) -> None:
        _expect(session.post(f"{stack.url}/v1/{http_ops[i]}:cancel", headers=headers,
                             timeout=30))

    def direct(i: int) -> None:
        direct_cancel(stack.client.transaction(), stack.ref(direct_ops[i]), PRINCIPAL)

    http_ms, direct_ms = interleaved([http_cancel, direct], samples, warmup)
    out.samples["cancel_http"] = [t * 1e3 for t in http_ms]
    out.samples["cancel_direct"] = [t * 1e3 for t in direct_ms]
    out.figures["cancel_http_p50_ms"] = median(http_ms) * 1e3
    out.figures["cancel_direct_p50_ms"] = median(direct_ms) * 1e3
    out.figures["cancel_overhead_ratio"] = median(http_ms) / median(direct_ms)

    def http_get(i: int) -> None:
        _expect(session.get(f"{stack.url}/v1/{http_ops[i]}", headers=headers, timeout=30))

    def direct_get(i: int) -> None:
        if not stack.ref(http_ops[i]).get().exists:
            raise RuntimeError("seeded operation missing")

    def http_floor(i: int) -> None:
        # The same GET without a token: routed, answered 401, no Firestore: what
        # HTTP, gunicorn, Flask and functions-framework cost on their own.
        _expect(session.get(f"{stack.url}/v1/{http_ops[i]}", timeout=30), 401)

    http_ms, direct_ms, floor_ms = interleaved([http_get, direct_get, http_floor], samples,
                                               warmup)
    out.samples["http_floor"] = [t * 1e3 for t in floor_ms]
    out.figures["http_floor_p50_ms"] = median(floor_ms) * 1e3
    out.samples["get_http"] = [t * 1e3 for t in http_ms]
    out.samples["get_direct"] = [t * 1e3 for t in direct_ms]
    out.figures["get_http_p50_ms"] = median(http_ms) * 1e3
    out.figures["get_direct_p50_ms"] = median(direct_ms) * 1e3
    out.figures["get_overhead_ratio"] = median(http_ms) / median(direct_ms)
    out.figures.update(_server_side(stack, "lat-http", warmup))


def _server_side(stack: BenchStack, prefix: str, warmup: int) -> dict[str, float]:
    """Median time inside the function's handler (``OperationsApi.handle``, from
    its request log line) for the latency phase's requests: what the service
    itself spends, without gunicorn, Flask, the network and the HTTP client."""
    latencies: dict[str, list[float]] = {"cancel": [], "get": [], "floor": []}
    kinds = {("POST", 200): "cancel", ("GET", 200): "get", ("GET", 401): "floor"}
    for line in (stack.log_dir / "operations_http.log").read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            request = entry["httpRequest"]
            kind = kinds.get((request["requestMethod"], request["status"]))
        except (ValueError, KeyError, TypeError):
            continue
        operation = str(entry.get("operation", ""))
        marker = f"/operations/{prefix}-"
        if kind and marker in operation and int(operation.split(marker)[1]) >= warmup:
            latencies[kind].append(float(request["latency"].rstrip("s")) * 1e3)
    return {f"{kind}_in_handler_p50_ms": median(values)
            for kind, values in latencies.items() if values}


def throughput(stack: BenchStack, per_client: int, rounds: int, out: HttpResults) -> None:
    """cancel_throughput_ratio: HTTP and direct rounds alternate; rates are summed
    over the rounds (total calls ÷ total time) on each side."""
    count = CLIENTS * per_client
    http_rates, direct_rates = [], []
    headers = stack.auth()
    meter = stack.cpu_meter()
    cpu: dict[str, Counter[str]] = {"http": Counter(), "direct": Counter()}
    for r in range(rounds):
        http_ops, direct_ops = _names(f"tp{r}-http", count), _names(f"tp{r}-direct", count)
        stack.seed(running_record(name, model.utcnow()) for name in http_ops + direct_ops)

        def http_cancel(client: int, k: int, ops: list[str] = http_ops) -> None:
            _expect(stack.session().post(f"{stack.url}/v1/{ops[client * per_client + k]}:cancel",
                                         headers=headers, timeout=60))

        def direct(client: int, k: int, ops: list[str] = direct_ops) -> None:
            direct_cancel(stack.client.transaction(), stack.ref(ops[client * per_client + k]),
                          PRINCIPAL)

        meter.start()
        http_rates.append(concurrent_rate(http_cancel, CLIENTS, per_client))
        cpu["http"].update(meter.stop())
        meter.start()
        direct_rates.append(concurrent_rate(direct, CLIENTS, per_client))
        cpu["direct"].update(meter.stop())
    http_rate = len(http_rates) / sum(1 / r for r in http_rates)  # total calls ÷ total time
    direct_rate = len(direct_rates) / sum(1 / r for r in direct_rates)
    out.figures["cancel_http_per_s"] = http_rate
    out.figures["cancel_direct_per_s"] = direct_rate
    out.figures["cancel_throughput_ratio"] = http_rate / direct_rate
    # CPU ms per cancel in each process: on 2 shared cores this is what bounds the rates.
    for side, used in cpu.items():
        for process, seconds in sorted(used.items()):
            out.figures[f"cancel_{side}_cpu_ms_{process}"] = seconds * 1e3 / (count * rounds)


def rss_growth(stack: BenchStack, total: int, first: int, out: HttpResults) -> None:
    """rss_growth_ratio on the function as started: mixed requests from 16 threads.

    The mix, by request number: 3/10 GET of an operation, 3/10 cancel of a done
    operation (a 200 that writes nothing), 2/10 GET of a missing one (404),
    1/10 without a token and 1/10 with a bad one (401). Each client thread keeps
    its own token, as real clients reuse an access token for its lifetime.
    """
    existing = _names("rss-done", 200)
    stack.seed(done_record(name, model.utcnow()) for name in existing)
    tokens = [stack.token(c) for c in range(CLIENTS)]
    pid = stack.http_function_pid()
    statuses: Counter[int] = Counter()
    thread_ids = itertools.count()
    local = threading.local()

    def request(i: int) -> int:
        session = stack.session()
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = next(thread_ids) % CLIENTS
        good = {"Authorization": f"Bearer {tokens[client]}"}
        op = existing[i % len(existing)]
        kind = i % 10
        url = f"{stack.url}/v1/{op}"
        if kind < 3:
            response = session.get(url, headers=good, timeout=60)
        elif kind < 6:
            response = session.post(url + ":cancel", headers=good, timeout=60)
        elif kind < 8:
            response = session.get(f"{url}-missing-{i}", headers=good, timeout=60)
        elif kind < 9:
            response = session.get(url, timeout=60)
        else:
            response = session.get(url, headers={"Authorization": "Bearer e30.e30.c2ln"},
                                   timeout=60)
        return int(response.status_code)

    expected = {200: 6 / 10, 404: 2 / 10, 401: 2 / 10}
    out.rss_curve.append((0, rss_kib(pid) / 1024))
    started = time.perf_counter()
    done = 0
    checkpoints = [first, *range(first + 1000, total + 1, 1000)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        for checkpoint in checkpoints:
            statuses.update(pool.map(request, range(done, checkpoint)))
            done = checkpoint
            out.rss_curve.append((done, rss_kib(pid) / 1024))
    elapsed = time.perf_counter() - started
    for status, share in expected.items():
        if abs(statuses[status] - share * total) > 1:
            raise RuntimeError(f"unexpected status mix: {dict(statuses)}")
    after_first = next(mib for n, mib in out.rss_curve if n == first)
    out.figures["rss_after_first_mib"] = after_first
    out.figures["rss_after_all_mib"] = out.rss_curve[-1][1]
    out.figures["rss_growth_ratio"] = out.rss_curve[-1][1] / after_first
    out.figures["mixed_requests_per_s"] = total / elapsed

"""Timing and statistics: medians, percentiles, paired samples, concurrent runs."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile_or_none(values: Sequence[float], q: float) -> float | None:
    """``percentile``, or None when there are no samples."""
    return percentile(values, q) if values else None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``call`` took, and what it returned."""
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def interleaved(calls: Sequence[Callable[[int], Any]], samples: int,
                warmup: int = 0) -> list[list[float]]:
    """Times ``call(i)`` of every call in turn, rotating which goes first on each
    sample, so drift on a shared machine hits all of them alike. Seconds."""
    times: list[list[float]] = [[] for _ in calls]
    for i in range(warmup + samples):
        for k in range(len(calls)):
            j = (i + k) % len(calls)
            seconds, _ = timed(lambda j=j, i=i: calls[j](i))
            if i >= warmup:
                times[j].append(seconds)
    return times


def concurrent_rate(work: Callable[[int, int], Any], clients: int, per_client: int) -> float:
    """Calls/s of ``clients`` threads each calling ``work(client, k)`` ``per_client``
    times, all released at once; the clock stops when the last one is done."""
    barrier = threading.Barrier(clients + 1)
    failures: list[BaseException] = []

    def client(index: int) -> None:
        barrier.wait()
        try:
            for k in range(per_client):
                work(index, k)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return clients * per_client / elapsed

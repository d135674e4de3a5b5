"""The bench's outputs: the table, ``results.json`` and the latency chart."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib.tools.localstack import REPO

Figures = Mapping[str, float | None]


@dataclass(frozen=True)
class Target:
    key: str
    target: str
    met: Callable[[float, Figures], bool] | None  # None: reported for comparison only


def _at_most(limit: float) -> Callable[[float, Figures], bool]:
    return lambda v, f: v <= limit


def _at_least(limit: float) -> Callable[[float, Figures], bool]:
    return lambda v, f: v >= limit


# The headline: the service against the floor (bare functions on the same
# emulator, same run) and the scale of one worker process.
HEADLINE: tuple[Target, ...] = (
    Target("get_vs_bare_ratio", "≤ 1.10", _at_most(1.10)),
    Target("cancel_vs_bare_ratio", "≤ 1.10", _at_most(1.10)),
    Target("cancel_write_vs_bare_ratio", "≤ 1.10", _at_most(1.10)),
    Target("cpu_per_get_vs_bare_ratio", "≤ 1.15", _at_most(1.15)),
    Target("cpu_per_cancel_vs_bare_ratio", "≤ 1.15", _at_most(1.15)),
    Target("cold_start_vs_bare_ratio", "≤ 1.10", _at_most(1.10)),
    Target("queue_latency_p50_ms", "—", None),
    Target("queue_latency_p99_ms", "—", None),
    Target("queue_vs_pubsub_floor_ratio", "≤ 1.3", _at_most(1.3)),
    Target("concurrent_jobs", "≥ 1000", _at_least(1000)),
    Target("concurrent_cancel_ack_p99_ms", "≤ 500", _at_most(500)),
    Target("cancel_ack_p50_ms", "—", None),
    Target("cancel_ack_p99_ms", "—", None),
    Target("forced_end_overshoot_p99_ms", "—", None),
    Target("worker_threads_per_job", "≤ 1.1", _at_most(1.1)),
    Target("worker_rss_per_job_kib", "≤ 200", _at_most(200)),
    Target("firestore_writes_per_job_hour", "≤ 60", _at_most(60)),
    Target("cost_per_job_hour_usd", "—", None),
    Target("list_unindexed_vs_page1_ratio", "≤ 2", _at_most(2)),
)

# The earlier headline (against direct Firestore calls, no HTTP at all), kept
# for continuity between runs.
CONTINUITY: tuple[Target, ...] = (
    Target("cancel_overhead_ratio", "≤ 1.3", _at_most(1.3)),
    Target("get_overhead_ratio", "≤ 1.5", _at_most(1.5)),
    Target("cancel_throughput_ratio", "≥ 0.7", _at_least(0.7)),
    Target("propagation_p50_ms", "—", None),
    Target("propagation_p99_ms", "≤ 100", _at_most(100)),
    Target("propagation_poll_p50_ms", "for comparison", None),
    Target("token_cached_us", "≤ 5% of cold",
           lambda v, f: f.get("token_cold_us") is not None
           and v <= 0.05 * float(f["token_cold_us"] or 0)),
    Target("token_cold_us", "—", None),
    Target("token_cold_ratio", "≤ 1.3", _at_most(1.3)),
    Target("list_page_ratio", "≤ 1.2", _at_most(1.2)),
    Target("import_ratio", "≤ 1.15", _at_most(1.15)),
    Target("firestore_reads_per_cancel", "1", lambda v, f: v == 1),
    # A running operation's cancel also writes its instance's inbox entry, in one commit.
    Target("firestore_writes_per_cancel", "≤ 2", _at_most(2)),
    Target("firestore_reads_per_get", "1", lambda v, f: v == 1),
    Target("rss_growth_ratio", "≤ 1.1", _at_most(1.1)),
)

TARGETS = HEADLINE + CONTINUITY


def _format(value: float | None) -> str:
    if value is None:
        return "null"
    if 0 < abs(value) < 0.001:
        return f"{value:.3g}"
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value)}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}"


def table(figures: Figures, notes: Mapping[str, str],
          targets: Sequence[Target] = HEADLINE) -> str:
    """A targets table as Markdown (it reads as plain text on a terminal too)."""
    rows = [("figure", "value", "target", "met?")]
    for target in targets:
        value = figures.get(target.key)
        if value is None:
            met = notes.get(target.key, "not measured")
        elif target.met is None:
            met = "—"
        else:
            met = "yes" if target.met(float(value), figures) else "**no**"
        rows.append((f"`{target.key}`", _format(value), target.target, met))
    return _markdown(rows)


def details(figures: Figures) -> str:
    """Every other figure the run measured (the parts behind the ratios)."""
    keys = {t.key for t in TARGETS}
    rows = [("measurement", "value")]
    rows += [(f"`{key}`", _format(value)) for key, value in figures.items() if key not in keys]
    return _markdown(rows)


def _markdown(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " (" + line.split(":", 1)[1].strip() + ")"
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()} {platform.machine()}, "
            f"{os.cpu_count()} CPUs{model}, Python {platform.python_version()}")


def git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "uncommitted"
    return done.stdout.strip() or "uncommitted"


def load_average() -> float:
    """The 1-minute load average: other work on the machine while the bench ran."""
    return os.getloadavg()[0]


def results(figures: Figures, elapsed_s: float, load_start: float) -> dict[str, Any]:
    return {**figures, "bench_seconds": round(elapsed_s, 1),
            "load_average_start": load_start, "load_average_end": load_average(),
            "machine": machine(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit()}


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    rounded = {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in data.items()}
    path.write_text(json.dumps(rounded, indent=2) + "\n")


def chart(path: Path, samples: Mapping[str, Sequence[float]],
          rss_curve: Sequence[tuple[int, float]]) -> None:
    """Latency distributions (cumulative) and the RSS curve, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    panels = [
        (axes[0][0], "Cancel of a running operation",
         [("cancel_http", "HTTP (token checked, 1 transaction)"),
          ("cancel_direct", "direct transaction (read + update)"),
          ("cancel_noop_ours", "no-op cancel, ours"),
          ("cancel_noop_bare", "no-op cancel, bare function (the floor)")], False),
        (axes[0][1], "Get an operation",
         [("get_http", "HTTP GET"), ("get_direct", "direct document read"),
          ("http_floor", "HTTP GET without a token (401, no Firestore)"),
          ("get_ours", "HTTP GET, next to the bare function"),
          ("get_bare", "bare function: one document get (the floor)")], False),
        (axes[1][0], "Cancel response → handler sees ctx.cancelled",
         [("propagation_listener", "on_snapshot listener (default)"),
          ("propagation_poll", "poll only (heartbeat 1 s)")], True),
    ]
    for ax, title, series, log in panels:
        tails = []
        for key, label in series:
            raw = samples.get(key, ())
            if not raw:
                continue
            # log scale: a push that beat the HTTP response (≤ 0 ms) is drawn at 0.1 ms
            values = sorted(max(v, 0.1) if log else v for v in raw)
            ranks = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, ranks, where="post",
                    label=f"{label}: p50 {statistics.median(raw):.1f} ms")
            tails.append(values[min(len(values) - 1, int(len(values) * 0.99))])
        ax.set_title(title)
        if log:
            ax.set_xlabel("milliseconds (log scale; ≤ 0, the handler knew first, at 0.1)")
        else:
            ax.set_xlabel("milliseconds (tails past 1.2 times the largest p99 cut off)")
            if tails:
                ax.set_xlim(0, max(tails) * 1.2)
        ax.set_ylabel("fraction of requests ≤ x")
        if log:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    ax = axes[1][1]
    if rss_curve:
        ax.plot([n for n, _ in rss_curve], [mib for _, mib in rss_curve], marker=".")
    ax.set_title("HTTP function RSS under mixed requests")
    ax.set_xlabel("requests served")
    ax.set_ylabel("VmRSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    fig.suptitle(f"Operations service benchmarks — {machine()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

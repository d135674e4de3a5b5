"""``make bench``: starts the stack, measures every figure, prints the table,
writes ``bench/results.json`` and ``bench/latency.png``.

    .venv/bin/python bench/run.py [--quick] [--keep-logs] [--out DIR]

Targets are goals, not assertions: a slow machine gets a report, not a
failure. The exit status is non-zero only when the bench itself could not run.
See BENCHMARKS.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import from the repo root, not bench/
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import floor, http_figures, inprocess, listing, propagation, report, scale
from bench.stack import BenchStack, new_work_dir
from lib.tools.localstack import StackError

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    """How many samples each figure takes."""

    latency_samples: int = 200
    latency_warmup: int = 30
    throughput_per_client: int = 25
    throughput_rounds: int = 2
    propagation_trials: int = 100
    rss_requests: int = 10_000
    rss_first: int = 1_000
    token_cached: int = 20_000
    token_cold: int = 400
    import_runs: int = 7
    count_operations: int = 20
    list_total: int = 10_000
    list_repeats: int = 15
    floor_samples: int = 200
    floor_warmup: int = 30
    cold_rounds: int = 3
    queue_trials: int = 30
    scale_jobs: int = 1000
    ack_jobs: int = 100
    stubborn_jobs: int = 20
    writes_jobs: int = 100
    writes_window_s: float = 30.0


QUICK = Plan(latency_samples=40, latency_warmup=10, throughput_per_client=8,
             throughput_rounds=1, propagation_trials=20, rss_requests=3_000, rss_first=1_000,
             token_cached=2_000, token_cold=60, import_runs=2, count_operations=5,
             list_total=5_200, list_repeats=3, floor_samples=60, floor_warmup=10,
             cold_rounds=1, queue_trials=10, scale_jobs=200, ack_jobs=20, stubborn_jobs=5,
             writes_jobs=100, writes_window_s=10.0)


class Progress:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="Benchmarks of the Operations service (make bench).")
    parser.add_argument("--quick", action="store_true", help="few samples (a smoke run)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the emulator and function logs (the path is printed)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR,
                        help="where results.json and latency.png go (default bench/)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    progress = Progress()
    load_start = report.load_average()

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    figures: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    samples: dict[str, list[float]] = {}
    http = http_figures.HttpResults()
    stack = BenchStack(new_work_dir(), keep_logs=args.keep_logs)
    try:
        # On the quiet machine first: nothing else is running yet.
        progress("import_ratio: fresh interpreters")
        figures.update(inprocess.imports(stack.dev_dir, plan.import_runs))
        progress("token figures: in-process verifier")
        figures.update(inprocess.tokens(stack.dev_dir, plan.token_cached, plan.token_cold))

        progress("starting emulators and both functions (functions-framework, gunicorn)")
        stack.start()
        progress(f"ready: {stack.url}; rss_growth_ratio: {plan.rss_requests} mixed requests")
        http_figures.rss_growth(stack, plan.rss_requests, plan.rss_first, http)
        progress("cancel and get latency: HTTP vs direct")
        http_figures.latency(stack, plan.latency_samples, plan.latency_warmup, http)
        progress("cancel throughput: 16 clients vs 16 threads")
        http_figures.throughput(stack, plan.throughput_per_client, plan.throughput_rounds, http)
        figures.update(http.figures)
        samples.update(http.samples)

        progress("the floor: bare functions-framework functions beside ours")
        bare = floor.Bare(stack)
        bare.start()
        try:
            progress("get and cancel: ours vs bare, latency and CPU per request")
            floor.versus_bare(stack, bare, plan.floor_samples, plan.floor_warmup, figures,
                              samples)
            progress("queue latency: create answered → claimed vs publish → push")
            floor.queue_latency(stack, bare, plan.queue_trials, figures)
            progress("cold start: spawn → first 200, ours vs bare")
            floor.cold_start(stack, bare, plan.cold_rounds, figures)
        finally:
            bare.stop()

        progress("propagation: listener")
        listener = propagation.run(stack, listener=True, trials=plan.propagation_trials,
                                   concurrency=2, label="listener")
        progress("propagation: poll only")
        poll = propagation.run(stack, listener=False, trials=plan.propagation_trials,
                               concurrency=10, label="poll")
        figures.update(propagation.summarize(listener, poll))
        samples["propagation_listener"], samples["propagation_poll"] = listener[0], poll[0]

        progress("firestore reads and writes per call")
        figures.update(inprocess.firestore_counts(stack, plan.count_operations))
        try:
            scale.concurrency(stack, plan.scale_jobs, plan.ack_jobs, plan.stubborn_jobs,
                              figures, progress)
        except Exception as exc:  # a figure missing, not the whole bench
            notes["concurrent_jobs"] = f"scale round failed: {exc}"[:200]
            progress(notes["concurrent_jobs"])
        scale.writes_per_job_hour(stack, plan.writes_jobs, plan.writes_window_s, figures,
                                  progress)
        progress("list pages")
        listed, note = listing.list_page_ratio(stack, plan.list_total, 50, 50, plan.list_repeats)
        figures.update(listed)
        if note:
            notes["list_page_ratio"] = "not implemented yet" if "501" in note else note
            progress(note)
    except (StackError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        progress("stopping the stack")
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    elapsed = time.perf_counter() - progress.started
    args.out.mkdir(parents=True, exist_ok=True)
    data = report.results(figures, elapsed, load_start)
    report.write_json(args.out / "results.json", data)
    try:
        report.chart(args.out / "latency.png", samples, http.rss_curve)
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -r requirements-dev.txt)",
              file=sys.stderr)
    print()
    print(report.table(figures, notes))
    print()
    print(report.table(figures, notes, report.CONTINUITY))
    print()
    print(report.details(figures))
    print(f"\n{data['machine']}; {data['date']}; commit {data['git_commit']}; "
          f"{elapsed:.0f} s; load average {load_start:.1f} at the start, "
          f"{data['load_average_end']:.1f} at the end.\n"
          f"Wrote {args.out / 'results.json'} and {args.out / 'latency.png'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

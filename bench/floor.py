"""The service against the floor: bare functions-framework functions
(``bench/bare.py``) that make the same single Firestore call, started with
the functions-framework CLI beside ours, on the same emulator, in the same run.

- ``get_vs_bare_ratio``, ``cancel_vs_bare_ratio`` (no-op), ``cancel_write_vs_bare_ratio``:
  median latency over HTTP, ours ÷ bare, samples interleaved, one client.
- ``cpu_per_get_vs_bare_ratio``, ``cpu_per_cancel_vs_bare_ratio``: CPU time of
  the function's process (``/proc/<pid>/stat`` utime + stime) per request,
  ours ÷ bare, over the same interleaved requests.
- ``cold_start_vs_bare_ratio``: spawn → first 200, ours ÷ bare (medians).
- ``queue_latency_p50_ms`` / ``_p99_ms``: a job's create answered → claimed
  (its ``claimTime``); ``queue_vs_pubsub_floor_ratio``: its p50 ÷ the p50 of a
  bare publish sent → the bare CloudEvent function invoked (the whole
  publish → push path, the floor of any queue on Pub/Sub).
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from bench.measure import interleaved, median, percentile
from bench.stack import BenchStack, cpu_seconds, done_record, running_record
from lib.core import model
from lib.tools.localstack import REPO, Process, create_push_subscription, free_port, start_all

BARE_SOURCE = REPO / "bench" / "bare.py"
MAIN_SOURCE = REPO / "main.py"


def _argv(source: Path, target: str, kind: str, port: int) -> list[str]:
    binary = str(Path(sys.executable).parent / "functions-framework")
    return [binary, "--source", str(source), "--target", target, "--signature-type", kind,
            "--host", "127.0.0.1", "--port", str(port)]


def function_pid(process: Process) -> int:
    """The gunicorn worker under a functions-framework CLI process."""
    assert process.popen is not None
    master = process.popen.pid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                return int(entry.name)
    raise RuntimeError(f"no gunicorn worker under {master}")


@dataclass
class Bare:
    """The three bare functions and the bare jobs topic."""

    stack: BenchStack
    processes: dict[str, Process] = field(default_factory=dict)
    topic: str = ""

    @property
    def env(self) -> dict[str, str]:
        assert self.stack.functions is not None
        return {**self.stack.functions.env, "BARE_COLLECTION": self.stack.collection}

    def start(self) -> None:
        assert self.stack.emulators is not None
        ports = {name: free_port() for name in ("bare_get", "bare_cancel", "bare_worker")}
        self.topic = f"bare-jobs-{uuid.uuid4().hex[:8]}"
        project = self.stack.emulators.project
        create_push_subscription(
            self.stack.emulators, self.topic,
            f"http://127.0.0.1:{ports['bare_worker']}/projects/{project}/topics/{self.topic}")
        self.processes = {
            name: Process(name, _argv(BARE_SOURCE, name,
                                      "cloudevent" if name == "bare_worker" else "http", port),
                          port, env=self.env, log_path=self.stack.log_dir / f"{name}.log")
            for name, port in ports.items()}
        start_all(list(self.processes.values()), 60)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.processes[name].port}"


def _bare_id(name: str) -> str:
    """The operation's document id, escaped for a query string."""
    return quote(model.document_id(name), safe="")


def _expect(response: Any, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.path_url}: "
                           f"{response.status_code} {response.text[:200]}")
    return response


def _names(prefix: str, count: int) -> list[str]:
    return [f"projects/bench/locations/us/operations/{prefix}-{i:05d}" for i in range(count)]


def _paired(stack: BenchStack, bare_pid: int, ours: Any, bare: Any, samples: int,
            warmup: int) -> tuple[float, float, float, float, list[float], list[float]]:
    """Interleaved ours/bare: medians (s) and CPU seconds per request of each process."""
    ours_pid = stack.http_function_pid()
    interleaved([ours, bare], warmup)  # warm both, not measured
    before = cpu_seconds(ours_pid), cpu_seconds(bare_pid)
    ours_s, bare_s = interleaved([ours, bare], samples)
    after = cpu_seconds(ours_pid), cpu_seconds(bare_pid)
    return (median(ours_s), median(bare_s), (after[0] - before[0]) / samples,
            (after[1] - before[1]) / samples, ours_s, bare_s)


def versus_bare(stack: BenchStack, bare: Bare, samples: int, warmup: int,
                figures: dict[str, float | None], chart: dict[str, list[float]]) -> None:
    session, headers = stack.session(), stack.auth()
    total = samples + warmup
    now = model.utcnow()
    running = _names("floor-get", total)
    done = _names("floor-noop", total)
    ours_w, bare_w = _names("floor-w-ours", total), _names("floor-w-bare", total)
    stack.seed([running_record(n, now) for n in running + ours_w + bare_w]
               + [done_record(n, now) for n in done])
    get_url, cancel_url = bare.url("bare_get"), bare.url("bare_cancel")

    doc = _bare_id

    # get: the same documents on both sides
    result = _paired(
        stack, function_pid(bare.processes["bare_get"]),
        lambda i: _expect(session.get(f"{stack.url}/v1/{running[i % total]}", headers=headers,
                                      timeout=30)),
        lambda i: _expect(session.get(f"{get_url}/?id={doc(running[i % total])}", timeout=30)),
        samples, warmup)
    figures.update(get_ours_p50_ms=result[0] * 1e3, get_bare_p50_ms=result[1] * 1e3,
                   get_vs_bare_ratio=result[0] / result[1],
                   cpu_per_get_ours_ms=result[2] * 1e3, cpu_per_get_bare_ms=result[3] * 1e3,
                   cpu_per_get_vs_bare_ratio=result[2] / result[3] if result[3] else None)
    chart["get_ours"], chart["get_bare"] = ([t * 1e3 for t in result[4]],
                                            [t * 1e3 for t in result[5]])

    # cancel, no-op: done operations, read and nothing written, on both sides
    cancel_pid = function_pid(bare.processes["bare_cancel"])
    result = _paired(
        stack, cancel_pid,
        lambda i: _expect(session.post(f"{stack.url}/v1/{done[i % total]}:cancel",
                                       headers=headers, timeout=30)),
        lambda i: _expect(session.post(f"{cancel_url}/?id={doc(done[i % total])}", timeout=30)),
        samples, warmup)
    figures.update(cancel_noop_ours_p50_ms=result[0] * 1e3,
                   cancel_noop_bare_p50_ms=result[1] * 1e3,
                   cancel_vs_bare_ratio=result[0] / result[1],
                   cpu_per_cancel_ours_ms=result[2] * 1e3,
                   cpu_per_cancel_bare_ms=result[3] * 1e3,
                   cpu_per_cancel_vs_bare_ratio=result[2] / result[3] if result[3] else None)
    chart["cancel_noop_ours"], chart["cancel_noop_bare"] = (
        [t * 1e3 for t in result[4]], [t * 1e3 for t in result[5]])

    # cancel with a write: a running operation of its own per request and side
    # (the warm-up uses the first ``warmup`` of each list, the samples the rest)
    counter = {"ours": 0, "bare": 0}

    def ours_write(_i: int) -> None:
        name = ours_w[counter["ours"]]
        counter["ours"] += 1
        _expect(session.post(f"{stack.url}/v1/{name}:cancel", headers=headers, timeout=30))

    def bare_write(_i: int) -> None:
        name = bare_w[counter["bare"]]
        counter["bare"] += 1
        _expect(session.post(f"{cancel_url}/?id={doc(name)}", timeout=30))

    result = _paired(stack, cancel_pid, ours_write, bare_write, samples, warmup)
    figures.update(cancel_write_ours_p50_ms=result[0] * 1e3,
                   cancel_write_bare_p50_ms=result[1] * 1e3,
                   cancel_write_vs_bare_ratio=result[0] / result[1],
                   cpu_per_cancel_write_ours_ms=result[2] * 1e3,
                   cpu_per_cancel_write_bare_ms=result[3] * 1e3,
                   cpu_per_cancel_write_vs_bare_ratio=(result[2] / result[3]
                                                       if result[3] else None))


def cold_start(stack: BenchStack, bare: Bare, rounds: int,
               figures: dict[str, float | None]) -> None:
    """Spawn → first 200, ours and bare alternately, ``rounds`` each."""
    assert stack.functions is not None
    name = _names("floor-cold", 1)[0]
    stack.seed([running_record(name, model.utcnow())])
    headers = stack.auth()
    ours_s: list[float] = []
    bare_s: list[float] = []
    for r in range(rounds):
        order = [("ours", ours_s), ("bare", bare_s)]
        for side, into in (order if r % 2 == 0 else order[::-1]):
            port = free_port()
            if side == "ours":
                argv, env = _argv(MAIN_SOURCE, "operations_http", "http", port), \
                    stack.functions.env
                url, hdrs = f"http://127.0.0.1:{port}/v1/{name}", headers
            else:
                argv, env = _argv(BARE_SOURCE, "bare_get", "http", port), bare.env
                url, hdrs = f"http://127.0.0.1:{port}/?id={_bare_id(name)}", {}
            process = Process(f"cold {side}", argv, port, env=env,
                              log_path=stack.log_dir / f"cold-{side}.log")
            started = time.perf_counter()
            process.start()
            try:
                while True:
                    try:
                        response = requests.get(url, headers=hdrs, timeout=30)
                    except requests.ConnectionError:
                        if time.perf_counter() - started > 60:
                            raise RuntimeError(f"cold start {side}: no answer in 60 s") from None
                        time.sleep(0.005)
                        continue
                    _expect(response)
                    into.append(time.perf_counter() - started)
                    break
            finally:
                process.stop()
    figures.update(cold_start_ours_ms=median(ours_s) * 1e3,
                   cold_start_bare_ms=median(bare_s) * 1e3,
                   cold_start_vs_bare_ratio=median(ours_s) / median(bare_s))


def _publish(stack: BenchStack, topic: str, seq: int) -> float:
    """One message on ``topic`` over the emulator's REST API; the wall-clock
    time it was sent."""
    assert stack.emulators is not None
    body = json.dumps({"messages": [{"data": base64.b64encode(b"{}").decode(),
                                     "attributes": {"seq": str(seq)}}]}).encode()
    url = (f"http://127.0.0.1:{stack.emulators.pubsub_port}/v1/projects/"
           f"{stack.emulators.project}/topics/{topic}:publish")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    sent = time.time()
    urllib.request.urlopen(request, timeout=10).close()
    return sent


def _bare_received(log: Path, seq: int, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    marker = f'"bareReceived": "{seq}"'
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if marker in line:
                return float(json.loads(line)["at"])
        time.sleep(0.01)
    raise RuntimeError(f"the bare worker never got message {seq}")


def queue_latency(stack: BenchStack, bare: Bare, trials: int,
                  figures: dict[str, float | None]) -> None:
    """Create answered → claimed (ours) against publish answered → pushed (bare),
    one trial of each in turn, each waited for before the next."""
    session, headers = stack.session(), stack.auth()
    ours_ms: list[float] = []
    bare_ms: list[float] = []
    from_sent: list[float] = []
    log = bare.processes["bare_worker"].log_path
    assert log is not None
    url = f"{stack.url}/v1/projects/bench/locations/us/jobs"
    for i in range(trials):
        sent = datetime.now(UTC)
        response = _expect(session.post(url, headers=headers, timeout=30, json={
            "kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}}))
        answered = datetime.now(UTC)
        name = response.json()["name"]
        deadline = time.monotonic() + 30
        while True:
            record = stack.ref(name).get().to_dict() or {}
            if record.get("claimTime") is not None:
                ours_ms.append((record["claimTime"] - answered).total_seconds() * 1e3)
                from_sent.append((record["claimTime"] - sent).total_seconds() * 1e3)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was never claimed")
            time.sleep(0.01)
        published = _publish(stack, bare.topic, i)
        bare_ms.append((_bare_received(log, i) - published) * 1e3)
        time.sleep(0.05)
    figures.update(queue_latency_p50_ms=percentile(ours_ms, 50),
                   queue_latency_p99_ms=percentile(ours_ms, 99),
                   queue_from_create_sent_p50_ms=percentile(from_sent, 50),
                   pubsub_floor_p50_ms=percentile(bare_ms, 50),
                   pubsub_floor_p99_ms=percentile(bare_ms, 99),
                   queue_vs_pubsub_floor_ratio=(percentile(ours_ms, 50)
                                                / percentile(bare_ms, 50)))

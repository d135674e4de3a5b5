"""The stack the benchmarks run against, started exactly as ``make run`` starts it.

The real Firestore and Pub/Sub emulators, the jobs topic with its push
subscription, and both functions under the functions-framework CLI (gunicorn,
its default workers and threads: the production server settings), every one of
them on a free port of 127.0.0.1. The bench's own Firestore client talks to the
same emulator for the direct baselines and for seeding.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from lib.core import model
from lib.tools import devtoken
from lib.tools.localstack import (
    Emulators,
    Functions,
    create_push_subscription,
    free_port,
    stack_env,
)

PROJECT = "demo-bench"
BATCH_LIMIT = 500  # Firestore: at most 500 writes in one batch


@dataclass
class BenchStack:
    """Emulators, both functions and the bench's clients; ``start`` then ``stop``."""

    work_dir: Path
    keep_logs: bool = False
    collection: str = field(default_factory=lambda: f"operations-bench-{uuid.uuid4().hex[:8]}")
    emulators: Emulators | None = None
    functions: Functions | None = None
    url: str = ""
    client: Any = None  # google.cloud.firestore.Client, imported after the env is set
    _local: threading.local = field(default_factory=threading.local)
    _tokens: dict[str, str] = field(default_factory=dict)  # by client number

    @property
    def dev_dir(self) -> Path:
        return self.work_dir / "dev"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    def start(self) -> None:
        devtoken.ensure_dev_key(self.dev_dir)
        self.emulators = Emulators(PROJECT, free_port(), free_port(), self.work_dir / "emulators")
        self.emulators.start()
        os.environ.update(self.emulators.env())  # the bench's own clients read these
        topic = f"bench-jobs-{uuid.uuid4().hex[:8]}"
        http_port, worker_port = free_port(), free_port()
        create_push_subscription(
            self.emulators, topic,
            f"http://127.0.0.1:{worker_port}/projects/{PROJECT}/topics/{topic}")
        env = stack_env(os.environ, self.emulators, topic, {
            "AUTH_ISSUERS": devtoken.issuers_env(self.dev_dir),
            "OPERATIONS_COLLECTION": self.collection,
        })
        self.functions = Functions(env, http_port, worker_port, self.log_dir)
        self.functions.start()
        self.url = f"http://127.0.0.1:{http_port}"
        from google.cloud import firestore

        self.client = firestore.Client(project=PROJECT)

    def stop(self) -> None:
        if self.functions is not None:
            self.functions.stop()
        if self.emulators is not None:
            self.emulators.stop()
        if self.client is not None:
            self.client.close()
        if self.keep_logs:
            print(f"logs kept in {self.work_dir}")
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # HTTP

    def token(self, client: int = 0) -> str:
        """The dev subject's token of one client, minted once (clients reuse an
        access token for its lifetime). Clients differ by lifetime, so each has
        a token of its own that the dev policy allows."""
        key = str(client)
        if key not in self._tokens:
            self._tokens[key] = devtoken.mint(ttl=devtoken.DEFAULT_TTL - client,
                                              dev_dir=self.dev_dir)
        return self._tokens[key]

    def auth(self, client: int = 0) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(client)}"}

    def session(self) -> requests.Session:
        """This thread's keep-alive session (one connection per client thread)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def http_function_pid(self) -> int:
        """The gunicorn worker process of operations_http (the CLI process is its master)."""
        assert self.functions is not None
        master = self.functions.processes[0].popen
        assert master is not None
        children = [pid for pid in _pids() if _ppid(pid) == master.pid]
        if len(children) != 1:
            raise RuntimeError(f"expected one gunicorn worker under {master.pid}, "
                               f"found {children}")
        return children[0]

    def firestore_emulator_pid(self) -> int | None:
        """The emulator's JVM (gcloud's launcher starts it as a descendant)."""
        assert self.emulators is not None
        launcher = self.emulators.processes[0].popen
        if launcher is None:
            return None
        for pid in _descendants(launcher.pid):
            try:
                if b"java" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        return None

    def cpu_meter(self) -> CpuMeter:
        pids = {"bench": os.getpid(), "http_function": self.http_function_pid()}
        emulator = self.firestore_emulator_pid()
        if emulator is not None:
            pids["firestore_emulator"] = emulator
        return CpuMeter(pids)

    # Firestore

    def ref(self, name: str) -> Any:
        return self.client.collection(self.collection).document(model.document_id(name))

    def seed(self, records: Iterable[Mapping[str, Any]], threads: int = 4) -> int:
        """Writes records with batch writes (500 per commit), a few commits at once."""
        chunks = list(_chunks(list(records), BATCH_LIMIT))

        def commit(chunk: list[Mapping[str, Any]]) -> None:
            batch = self.client.batch()
            for record in chunk:
                batch.set(self.ref(record["name"]), dict(record))
            batch.commit()

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(commit, chunks))
        return sum(len(chunk) for chunk in chunks)


def job_record(name: str, now: datetime, kind: str = "demo.countdown") -> dict[str, Any]:
    """A QUEUED job as ``jobs.create`` writes it (``lib.core.model.new_job``)."""
    parent = name.rsplit("/operations/", 1)[0]
    return model.new_job(name=name, parent=parent, target=name.replace("/operations/", "/jobs/"),
                         kind=kind, params={"steps": 1, "stepSeconds": 60.0},
                         created_by=devtoken.DEFAULT_SUBJECT, now=now)


def running_record(name: str, now: datetime) -> dict[str, Any]:
    """A job as the worker's claim leaves it (RUNNING, attempt 1, a live lease):
    the state a cancel of a running operation finds."""
    return {
        **job_record(name, now),
        "state": model.State.RUNNING.value,
        "attempt": 1,
        "lease": {"owner": "bench", "token": 1, "expireTime": now + timedelta(hours=1)},
        "statusMessage": "Running.",
    }


def done_record(name: str, now: datetime) -> dict[str, Any]:
    """A job that has succeeded (a cancel of it changes nothing)."""
    return {**job_record(name, now), "state": model.State.SUCCEEDED.value, "attempt": 1,
            **model.succeeded_changes({"steps": 1}, now=now, retention=timedelta(days=30))}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and ')'


def _descendants(root: int) -> list[int]:
    parents = {pid: _ppid(pid) for pid in _pids()}
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a whole process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU seconds spent by named processes between ``start`` and ``stop``."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def new_work_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ops-bench-"))

"""The local stack (``make run``): the real Firestore and Pub/Sub emulators, the
jobs topic with a push subscription to the worker, and both functions under
functions-framework (gunicorn, as in production).

Every process is started in a session of its own and stopped by its process
group: gcloud's launcher does not pass Ctrl-C on to the Java emulators.
The tests use the same classes, so what they run is what ``make run`` runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
DEV_POLICY = REPO / "local" / "dev-policy.json"


class StackError(RuntimeError):
    """A part of the local stack did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Process:
    """A child in its own session, stopped with its whole process group."""

    name: str
    argv: list[str]
    port: int
    env: Mapping[str, str] | None = None
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if port_open(self.port):
            raise StackError(f"{self.name}: port {self.port} is already in use")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.popen = subprocess.Popen(
            self.argv, cwd=REPO, env=dict(self.env) if self.env is not None else None,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True,
        )

    def wait_ready(self, url: str, timeout: float) -> None:
        """Waits until ``url`` answers over HTTP (any status)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise StackError(f"{self.name} exited with {self.popen.returncode}"
                                 f"{self._log_hint()}")
            try:
                urllib.request.urlopen(url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise StackError(f"{self.name} did not answer at {url} within {timeout:.0f}s"
                         f"{self._log_hint()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; children (the JVM) may still hold the port.
            deadline = time.monotonic() + timeout
            while port_open(self.port) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not port_open(self.port):
                break
        if self._log is not None:
            self._log.close()
        self.popen = None

    def pause(self, timeout: float = 5.0) -> None:
        """SIGSTOP the whole process group, and wait until every member is
        stopped: the signal is asynchronous, and a fault test must not race it."""
        assert self.popen is not None
        group = os.getpgid(self.popen.pid)
        os.killpg(group, signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [_proc_state(pid) for pid in _group_members(group)]
            if states and all(state in ("T", "t", None) for state in states):
                return
            time.sleep(0.01)
        raise StackError(f"{self.name} did not stop within {timeout:.0f}s")

    def resume(self) -> None:
        assert self.popen is not None
        os.killpg(os.getpgid(self.popen.pid), signal.SIGCONT)

    def _log_hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path else ""


def _group_members(group: int) -> list[int]:
    """The pids of process group ``group`` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:  # after "pid (comm)": state, ppid, pgrp
                members.append(int(entry.name))
    return members


def _proc_state(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None  # gone


def start_all(processes: list[Process], timeout: float) -> None:
    """Starts every process and waits for each to answer; on any failure stops
    them all (in reverse order) before raising."""
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready(f"http://127.0.0.1:{process.port}/", timeout)
    except BaseException:
        for process in reversed(processes):
            process.stop()
        raise


@dataclass
class Emulators:
    """The Firestore and Pub/Sub emulators from the Google Cloud SDK."""

    project: str
    firestore_port: int
    pubsub_port: int
    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    def start(self, timeout: float = 90.0) -> None:
        if shutil.which("gcloud") is None:
            raise StackError("gcloud is not on PATH: install the Google Cloud SDK with the "
                             "cloud-firestore-emulator and pubsub-emulator components")
        self.processes = [
            Process("firestore emulator",
                    ["gcloud", "emulators", "firestore", "start",
                     f"--host-port=127.0.0.1:{self.firestore_port}"],
                    self.firestore_port, log_path=self.log_dir / "firestore-emulator.log"),
            Process("pubsub emulator",
                    ["gcloud", "beta", "emulators", "pubsub", "start",
                     f"--host-port=127.0.0.1:{self.pubsub_port}", f"--project={self.project}",
                     f"--data-dir={self.log_dir / 'pubsub-data'}"],
                    self.pubsub_port, log_path=self.log_dir / "pubsub-emulator.log"),
        ]
        (self.log_dir / "pubsub-data").mkdir(parents=True, exist_ok=True)
        start_all(self.processes, timeout)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def env(self) -> dict[str, str]:
        return {
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{self.firestore_port}",
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{self.pubsub_port}",
            "GOOGLE_CLOUD_PROJECT": self.project,
        }


@contextlib.contextmanager
def _emulator_env(emulators: Emulators) -> Iterator[None]:
    """The Pub/Sub clients find the emulator only in the environment: set it
    for the block, then put back what was there."""
    previous = {k: os.environ.get(k) for k in emulators.env()}
    os.environ.update(emulators.env())
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_push_subscription(emulators: Emulators, topic: str, endpoint: str,
                             subscription: str | None = None) -> None:
    """Creates ``topic`` and a push subscription to ``endpoint`` (idempotent)."""
    with _emulator_env(emulators):
        import google.cloud.pubsub_v1 as pubsub_v1
        from google.api_core import exceptions

        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topic_path = publisher.topic_path(emulators.project, topic)
        sub_path = subscriber.subscription_path(emulators.project, subscription or f"{topic}-push")
        with contextlib.suppress(exceptions.AlreadyExists):
            publisher.create_topic(name=topic_path)
        # A job holds its push open while it runs: a 600 s ack deadline keeps
        # the emulator from redelivering a running job every 10 s.
        with contextlib.suppress(exceptions.AlreadyExists):
            subscriber.create_subscription(
                name=sub_path, topic=topic_path, ack_deadline_seconds=600,
                push_config=pubsub_v1.types.PushConfig(push_endpoint=endpoint),
            )
        subscriber.close()
        publisher.transport.close()


def create_topic(emulators: Emulators, topic: str,
                 pull_subscription: str | None = None) -> None:
    """Creates ``topic`` (the lifecycle events topic, say) and, if named, a
    pull subscription on it with message ordering (idempotent)."""
    with _emulator_env(emulators):
        import google.cloud.pubsub_v1 as pubsub_v1
        from google.api_core import exceptions

        publisher = pubsub_v1.PublisherClient()
        topic_path = publisher.topic_path(emulators.project, topic)
        with contextlib.suppress(exceptions.AlreadyExists):
            publisher.create_topic(name=topic_path)
        if pull_subscription is not None:
            subscriber = pubsub_v1.SubscriberClient()
            with contextlib.suppress(exceptions.AlreadyExists):
                subscriber.create_subscription(request={
                    "name": subscriber.subscription_path(emulators.project, pull_subscription),
                    "topic": topic_path, "enable_message_ordering": True})
            subscriber.close()
        publisher.transport.close()


@dataclass
class Functions:
    """operations_http, operations_worker (and operations_sweep, given a port)
    under functions-framework."""

    env: Mapping[str, str]
    http_port: int
    worker_port: int
    log_dir: Path | None = None
    sweep_port: int | None = None
    worker_env: Mapping[str, str] | None = None  # extra settings for the worker only
    processes: list[Process] = field(default_factory=list)

    def start(self, timeout: float = 60.0) -> None:
        binary = str(Path(sys.executable).parent / "functions-framework")
        specs = [("operations_http", "http", self.http_port),
                 ("operations_worker", "cloudevent", self.worker_port)]
        if self.sweep_port is not None:
            specs.append(("operations_sweep", "cloudevent", self.sweep_port))
        self.processes = [
            Process(target, [binary, "--source", str(REPO / "main.py"), "--target", target,
                             "--signature-type", kind, "--host", "127.0.0.1", "--port", str(port)],
                    port, env={**self.env, **(self.worker_env or {})}
                    if target == "operations_worker" else self.env,
                    log_path=self.log_dir / f"{target}.log" if self.log_dir else None)
            for target, kind, port in specs
        ]
        start_all(self.processes, timeout)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def stack_env(base: Mapping[str, str], emulators: Emulators, topic: str,
              overrides: Mapping[str, str] | None = None,
              api_url: str | None = None) -> dict[str, str]:
    """The functions' environment: emulators, the dev issuer (its audience the
    API's URL, ``api_url``) and the dev policy."""
    from lib.tools import devtoken
    env = dict(base)
    env.update(emulators.env())
    env.setdefault("OPERATIONS_TOPIC", topic)
    env.setdefault("AUTH_ISSUERS", devtoken.issuers_env(audience=api_url))
    env.setdefault("OPERATIONS_POLICY_FILE", str(DEV_POLICY))
    env.setdefault("AUTH_TOKENINFO_URL", "")  # no Google tokeninfo offline: JWTs only
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PAGE_TOKEN_SECRET", secrets.token_hex(32))  # tokens last one run
    env.update(overrides or {})
    return env


def publish_tick(emulators: Emulators, topic: str) -> None:
    """What Cloud Scheduler does every minute: one message on the sweep topic."""
    body = json.dumps({"messages": [{"data": base64.b64encode(b"{}").decode()}]}).encode()
    url = (f"http://127.0.0.1:{emulators.pubsub_port}/v1/projects/{emulators.project}"
           f"/topics/{topic}:publish")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()


def main() -> int:
    env = os.environ
    project = env.get("GOOGLE_CLOUD_PROJECT") or "demo-local"
    topic = env.get("OPERATIONS_TOPIC") or "operations-jobs"
    events_topic = env.get("OPERATIONS_EVENTS_TOPIC") or f"{topic}-events"
    http_port = int(env.get("PORT", "8080"))
    worker_port = int(env.get("WORKER_PORT", "8081"))
    sweep_port = int(env.get("SWEEP_PORT", "8082"))
    sweep_every = float(env.get("SWEEP_INTERVAL_SECONDS", "60"))
    log_dir = REPO / ".dev" / "logs"
    emulators = Emulators(project, int(env.get("FIRESTORE_EMULATOR_PORT", "8086")),
                          int(env.get("PUBSUB_EMULATOR_PORT", "8085")), log_dir)
    functions = Functions(stack_env(env, emulators, topic,
                                    {"OPERATIONS_EVENTS_TOPIC": events_topic},
                                    api_url=f"http://127.0.0.1:{http_port}"),
                          http_port, worker_port, sweep_port=sweep_port)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        # Only the first signal interrupts: a second one (Ctrl-C twice, or a
        # signal sent to both make and us) must not cut the clean-up short.
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        print(f"starting emulators (logs in {log_dir}) ...", flush=True)
        emulators.start()
        create_push_subscription(
            emulators, topic, f"http://127.0.0.1:{worker_port}/projects/{project}/topics/{topic}")
        create_push_subscription(
            emulators, f"{topic}-sweep",
            f"http://127.0.0.1:{sweep_port}/projects/{project}/topics/{topic}-sweep")
        # Lifecycle events, with a pull subscription to read them from.
        create_topic(emulators, events_topic, pull_subscription=f"{events_topic}-pull")
        functions.start()
        print(json.dumps({"api": f"http://127.0.0.1:{http_port}", "worker": worker_port,
                          "sweep": sweep_port, "events_topic": events_topic,
                          "firestore": emulators.firestore_port,
                          "pubsub": emulators.pubsub_port, "project": project}), flush=True)
        print(f"ready: Operations API on http://127.0.0.1:{http_port} (Ctrl-C stops everything)",
              flush=True)
        next_sweep = time.monotonic() + sweep_every
        while all(p.popen is not None and p.popen.poll() is None
                  for p in functions.processes + emulators.processes):
            time.sleep(0.5)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + sweep_every
                try:
                    publish_tick(emulators, f"{topic}-sweep")
                except OSError as exc:
                    print(f"sweep tick failed: {exc}", file=sys.stderr)
        print("a process of the stack exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        functions.stop()
        emulators.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())

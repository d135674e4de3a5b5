"""Retries, continuations across invocations, and workers that die or freeze:
real worker processes where it matters, on the real emulators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from google.api_core import exceptions

from lib.core import model
from lib.core.config import Settings
from lib.core.publisher import PubSubJobPublisher
from lib.jobs.sweep import RecoverySweep
from lib.jobs.worker import OperationWorker
from lib.kinds import Param, register
from lib.tools.localstack import REPO
from tests.leases import instance_expired

SETTINGS = Settings(heartbeat_seconds=0.2, progress_min_interval_seconds=0,
                    retry_backoff_seconds=0.05, max_attempts=3)
_failures: dict[str, int] = {}
_steps_run: dict[str, list[int]] = {}


@register("test.flaky", params={"fail": Param(int, default=0), "key": Param(str)})
def _flaky(ctx, params):
    seen = _failures.setdefault(params["key"], 0)
    if seen < params["fail"]:
        _failures[params["key"]] = seen + 1
        raise RuntimeError("transient trouble")
    return {"failedFirst": seen}


@register("test.steps", params={"steps": Param(int), "key": Param(str)})
def _steps(ctx, params):
    for step in range(int(ctx.state.get("step", 0)) + 1, params["steps"] + 1):
        ctx.sleep(0.15)
        _steps_run.setdefault(params["key"], []).append(step)
        ctx.checkpoint({"step": step})
    return {"steps": params["steps"]}


def job(store, unique, kind, **params):
    name = f"projects/{unique}/locations/l/operations/{kind}"
    store.create(model.new_job(name=name, parent=f"projects/{unique}/locations/l", target="t",
                               kind=kind, params=params, created_by="t", now=model.utcnow()))
    return name


def test_an_unexpected_failure_is_retried_and_the_attempt_counted(store, unique):
    name = job(store, unique, "test.flaky", fail=2, key=unique)
    assert OperationWorker(store, SETTINGS).run(name) == "succeeded"
    record = store.get(name)
    assert record["response"] == {"failedFirst": 2}
    assert record["attempt"] == 3


def test_a_job_that_keeps_failing_ends_internal_after_max_attempts(store, unique):
    name = job(store, unique, "test.flaky", fail=99, key=unique)
    assert OperationWorker(store, SETTINGS).run(name) == "failed"
    record = store.get(name)
    assert record["error"]["code"] == 13  # INTERNAL: nothing of the exception leaks
    assert "transient" not in record["error"]["message"]
    assert record["attempt"] == SETTINGS.max_attempts
    assert _failures[unique] == SETTINGS.max_attempts


def test_a_job_longer_than_its_slice_continues_across_invocations(store, unique, emulators,
                                                                   jobs_topic):
    topic, published = jobs_topic
    publisher = PubSubJobPublisher(emulators.project, topic)
    settings = replace(SETTINGS, slice_seconds=0.4)
    name = job(store, unique, "test.steps", steps=8, key=unique)
    outcomes = []
    for _ in range(10):
        outcomes.append(OperationWorker(store, settings, publisher).run(name))
        if outcomes[-1] != "continued":
            break
        assert store.get(name)["state"] == "QUEUED"
        assert published() == [name], "each slice publishes its continuation"
    assert outcomes[-1] == "succeeded" and outcomes.count("continued") >= 2
    assert _steps_run[unique] == list(range(1, 9)), "no step ran twice, none was skipped"
    record = store.get(name)
    assert record["response"] == {"steps": 8}
    assert record["continuations"] == outcomes.count("continued")


def test_a_cancel_between_slices_ends_it_without_running_the_next(store, unique, emulators,
                                                                  jobs_topic):
    topic, _ = jobs_topic
    publisher = PubSubJobPublisher(emulators.project, topic)
    settings = replace(SETTINGS, slice_seconds=0.4)
    name = job(store, unique, "test.steps", steps=20, key=unique)
    assert OperationWorker(store, settings, publisher).run(name) == "continued"
    ran = list(_steps_run[unique])
    store.cancel(name, principal="a", now=model.utcnow(), retention=timedelta(days=1))
    assert OperationWorker(store, settings, publisher).run(name) == "skipped"
    record = store.get(name)
    assert record["done"] and record["error"]["code"] == 1
    assert _steps_run[unique] == ran


WORKER_PROCESS = textwrap.dedent("""
    import sys
    from google.cloud import firestore
    from lib.core.config import Settings
    from lib.core.store import FirestoreOperationStore
    from lib.jobs.worker import OperationWorker
    store = FirestoreOperationStore(firestore.Client(project=sys.argv[1]), sys.argv[2])
    settings = Settings(lease_seconds=1.0, heartbeat_seconds=0.3,
                        progress_min_interval_seconds=0)
    print(OperationWorker(store, settings, owner="child").run(sys.argv[3]), flush=True)
""")


def start_worker_process(emulators, store, name):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER_PROCESS, emulators.project, store._collection.id, name],
        cwd=REPO, env={**os.environ, **emulators.env(), "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, text=True)


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_as_redelivered(worker, name, timeout=120.0):
    """Runs ``name`` the way Pub/Sub delivers it: a delivery that fails is
    delivered again. One fails when the lost worker died (or froze) inside a
    transaction: its document stays locked until Firestore expires the lock,
    after 60 s idle; until then the claim ends ABORTED."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return worker.run(name)
        except exceptions.Aborted:
            assert time.monotonic() < deadline, "the lost worker's lock never expired"
            time.sleep(1.0)


@pytest.mark.parametrize("how", ["killed", "frozen then resumed"])
def test_a_lost_worker_is_recovered_and_cannot_overwrite_anything(store, queued, emulators,
                                                                   jobs_topic, how):
    topic, published = jobs_topic
    name = queued(steps=20, stepSeconds=0.1)
    child = start_worker_process(emulators, store, name)
    try:
        wait_for(lambda: store.get(name)["progressPercent"] > 0)
        child.send_signal(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        # Its lease (1 s) runs out; the sweep sees a dead worker and re-publishes.
        wait_for(lambda: instance_expired(store, "child"))
        report = RecoverySweep(store, PubSubJobPublisher(emulators.project, topic),
                               SETTINGS).run()
        assert report["republished"] == 1 and published() == [name]
        fast = replace(SETTINGS, progress_min_interval_seconds=0)
        assert run_as_redelivered(OperationWorker(store, fast, owner="rescuer"),
                                  name) == "succeeded"
        done = store.get(name)
        assert done["attempt"] == 2 and done["response"] == {"steps": 20}
        if how == "frozen then resumed":
            child.send_signal(signal.SIGCONT)
            assert child.wait(timeout=30) == 0
            assert child.stdout.read().strip() == "lease_lost"
            assert store.get(name) == done, "the old worker wrote nothing"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()


MANY_JOBS_PROCESS = textwrap.dedent("""
    import sys, threading
    from google.cloud import firestore
    from lib.core.config import Settings
    from lib.core.store import FirestoreOperationStore
    from lib.jobs.worker import OperationWorker
    store = FirestoreOperationStore(firestore.Client(project=sys.argv[1]), sys.argv[2])
    settings = Settings(lease_seconds=1.0, heartbeat_seconds=0.3,
                        progress_min_interval_seconds=0)
    worker = OperationWorker(store, settings, owner="crowded")
    threads = [threading.Thread(target=worker.run, args=(name,)) for name in sys.argv[3:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
""")


def test_an_instance_killed_while_running_50_jobs_loses_none_of_them(store, queued, emulators,
                                                                     jobs_topic):
    """One instance lease for all 50: when it runs out, the sweep re-publishes
    every job, and a new worker finishes each exactly once."""
    topic, published = jobs_topic
    names = [queued(steps=100, stepSeconds=0.1) for _ in range(50)]
    child = subprocess.Popen(
        [sys.executable, "-c", MANY_JOBS_PROCESS, emulators.project, store._collection.id,
         *names], cwd=REPO, env={**os.environ, **emulators.env(), "PYTHONPATH": str(REPO)})
    try:
        wait_for(lambda: all(store.get(n)["progressPercent"] > 0 for n in names), timeout=60)
        child.send_signal(signal.SIGKILL)
        child.wait()
        wait_for(lambda: instance_expired(store, "crowded"))
        report = RecoverySweep(store, PubSubJobPublisher(emulators.project, topic),
                               SETTINGS).run()
        assert report["republished"] == 50
        assert sorted(published()) == sorted(names)
        rescuer = OperationWorker(store, replace(SETTINGS, progress_min_interval_seconds=1),
                                  owner="rescuer")
        outcomes: list[str] = []
        threads = [threading.Thread(target=lambda n=n: outcomes.append(
            run_as_redelivered(rescuer, n))) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes == ["succeeded"] * 50
        for name in names:
            record = store.get(name)
            assert record["attempt"] == 2 and record["response"] == {"steps": 100}
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()

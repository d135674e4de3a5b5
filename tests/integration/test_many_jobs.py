"""Many jobs in one worker process: 200 running at once share one instance
lease, one cancel listener and one instance thread; all cancelled at once,
every one hears of it by push and ends with code 1, the instance's cancel
inbox is emptied, and no thread is left behind."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from lib.core import model
from lib.core.config import Settings
from lib.jobs.worker import OperationWorker
from tests.waiting import wait_for

JOBS = 200


def test_200_jobs_at_once_in_one_process_all_cancelled_at_once(store, unique):
    parent = f"projects/{unique}/locations/l"
    names = [f"{parent}/operations/op-{i:03d}" for i in range(JOBS)]
    batch = store._client.batch()
    for name in names:
        batch.create(store._ref(name), model.new_job(
            name=name, parent=parent, target="t", kind="demo.countdown",
            params={"steps": 100, "stepSeconds": 30.0}, created_by="t", now=model.utcnow()))
    batch.commit()
    base = threading.active_count()
    # A heartbeat (and so a poll) too slow to matter: the cancels come by push.
    worker = OperationWorker(store, Settings(heartbeat_seconds=60, lease_seconds=180))
    outcomes: list[str] = []
    runners = [threading.Thread(target=lambda n=n: outcomes.append(worker.run(n)))
               for n in names]
    for runner in runners:
        runner.start()
    wait_for(lambda: worker.instance.running() == JOBS, timeout=60, what="all 200 running")
    # Threads beyond the handlers' own: the instance's and its one listener's few.
    assert threading.active_count() - base - JOBS <= 5

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: store.cancel(n, principal="ops@example.com",
                                             now=model.utcnow(), retention=timedelta(days=1),
                                             reason="draining"), names))
    started = time.monotonic()
    for runner in runners:
        runner.join(timeout=60)
    assert time.monotonic() - started < 40
    assert outcomes == ["cancelled"] * JOBS
    for name in names:
        record = store.get(name)
        assert record["state"] == "CANCELLED" and record["error"]["code"] == 1
        assert record["cancelRequestTime"] <= record["cancelAcknowledgeTime"] <= record["endTime"]
    inbox = store._inbox(worker.instance.owner)
    wait_for(lambda: not list(inbox.limit(1).stream()), timeout=10,
             what="the cancel inbox emptied")
    wait_for(lambda: threading.active_count() <= base, timeout=45,
             what="the thread count back to its base (threads now: "
                  f"{sorted(t.name for t in threading.enumerate())})")

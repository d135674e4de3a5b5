"""Screenshots of the web console for the README (``make screenshots``).

Starts its own local stack (the emulators and both functions, as ``make run``
does, on free ports), creates a few operations in every state, signs in to
``/console`` with a dev token in Debian's chromium (Playwright, headless) and
writes PNGs of the list and of one operation's details into docs/images/.

Usage: scripts/screenshots.py [--output DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from lib.core import model  # noqa: E402
from lib.tools import devtoken  # noqa: E402
from lib.tools.localstack import (  # noqa: E402
    Emulators,
    Functions,
    create_push_subscription,
    free_port,
    stack_env,
)

PARENT = "projects/acme/locations/us-central1"
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update",
                 "--disable-default-apps", "--disable-sync", "--no-first-run",
                 "--no-default-browser-check", "--hide-scrollbars"]


class Api:
    """The few calls the script makes, with the dev token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def create(self, **params: Any) -> str:
        kind = params.pop("kind", "demo.countdown")
        response = self.session.post(f"{self.url}/v1/{PARENT}/jobs", timeout=30,
                                     json={"kind": kind, "params": params})
        response.raise_for_status()
        return str(response.json()["name"])

    def get(self, name: str) -> dict[str, Any]:
        response = self.session.get(f"{self.url}/v1/{name}", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def wait(self, name: str) -> None:
        self.session.post(f"{self.url}/v1/{name}:wait", json={"timeout": "30s"},
                          timeout=40).raise_for_status()

    def cancel(self, name: str, reason: str) -> None:
        self.session.post(f"{self.url}/v1/{name}:cancel", json={}, timeout=30,
                          headers={"X-Goog-Request-Reason": reason}).raise_for_status()

    def until(self, name: str, check: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.get(name)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not get there in {timeout} s")
            time.sleep(0.1)


def _attempt(operation: dict[str, Any]) -> int:
    return int(operation["metadata"]["value"].get("attempt", 0))


def make_operations(api: Api, store: Any) -> str:
    """Operations in every state; returns the name of the cancelled one."""
    done = [api.create(steps=3, stepSeconds=0.2), api.create(steps=5, stepSeconds=0.1,
                                                             failAtStep=4)]
    cancelled = api.create(steps=200, stepSeconds=0.5)
    api.until(cancelled, lambda op: _attempt(op) >= 1 and
              op["metadata"]["value"].get("progressPercent", 0) >= 1)
    api.cancel(cancelled, "Superseded by the 14:00 import")
    for name in done:
        api.wait(name)
    api.wait(cancelled)
    api.create(steps=12, stepSeconds=0.5)
    running = [api.create(steps=400, stepSeconds=1), api.create(steps=60, stepSeconds=0.5)]
    queued = f"{PARENT}/operations/{uuid.uuid4().hex[:12]}"
    store.create(model.new_job(name=queued, parent=PARENT, target=f"{PARENT}/jobs/nightly",
                               kind="demo.countdown", params={"steps": 30},
                               created_by="dev@example.com", now=model.utcnow()))
    for name in running:
        api.until(name, lambda op: op["metadata"]["value"].get("progressPercent", 0) >= 3)
    return cancelled


def take(url: str, token: str, cancelled: str, output: Path) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("chromium is not installed: apt-get install -y chromium")
    written = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, headless=True,
                                         args=CHROMIUM_ARGS)
        for label, viewport, scale in [("", {"width": 1280, "height": 760}, 1),
                                       ("-phone", {"width": 390, "height": 844}, 2)]:
            context = browser.new_context(viewport=viewport, device_scale_factor=scale,
                                          color_scheme="light", locale="en-US",
                                          timezone_id="UTC")
            page = context.new_page()
            page.goto(f"{url}/console")
            page.get_by_label("Access token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_label("Parent").fill(PARENT)
            page.get_by_role("button", name="Apply").click()
            expect(page.get_by_role("row")).to_have_count(8)
            page.wait_for_timeout(1200)  # let the progress bars move once
            page.mouse.move(0, 0)
            path = output / f"console-list{label}.png"
            page.screenshot(path=str(path))
            written.append(path)
            page.get_by_role("link", name=cancelled).click()
            expect(page.get_by_role("heading", name="Cancellation")).to_be_visible()
            page.wait_for_timeout(300)
            path = output / f"console-details{label}.png"
            page.screenshot(path=str(path), full_page=not label)
            written.append(path)
            context.close()
        browser.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "images",
                        help="directory for the PNGs (default: docs/images)")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-screenshots-") as tmp:
        work = Path(tmp)
        dev_dir = work / "dev"
        devtoken.ensure_dev_key(dev_dir)
        emulators = Emulators("demo-screenshots", free_port(), free_port(), work / "logs")
        http_port, worker_port = free_port(), free_port()
        topic = "screenshot-jobs"
        env = stack_env(os.environ, emulators, topic, {
            "AUTH_ISSUERS": devtoken.issuers_env(dev_dir),
            "OPERATIONS_COLLECTION": "operations",
            "PROGRESS_MIN_INTERVAL_SECONDS": "0",
        })
        functions = Functions(env, http_port, worker_port, work / "logs")
        try:
            print("screenshots: starting the local stack ...", flush=True)
            emulators.start()
            create_push_subscription(
                emulators, topic,
                f"http://127.0.0.1:{worker_port}/projects/{emulators.project}/topics/{topic}")
            functions.start()
            url = f"http://127.0.0.1:{http_port}"
            token = devtoken.mint(dev_dir=dev_dir)
            os.environ.update(emulators.env())  # the Firestore client finds the emulator here
            from google.cloud import firestore

            from lib.core.store import FirestoreOperationStore

            store = FirestoreOperationStore(firestore.Client(project=emulators.project),
                                            "operations")
            print("screenshots: creating operations ...", flush=True)
            cancelled = make_operations(Api(url, token), store)
            for path in take(url, token, cancelled, args.output):
                print(f"screenshots: wrote {path.relative_to(REPO_ROOT)}", flush=True)
        finally:
            functions.stop()
            emulators.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The web console (``GET /console``) in a real browser, against the running stack.

Playwright's sync API drives Debian's ``chromium`` (headless, background
networking off); one browser for the module, a fresh context (empty
sessionStorage, no cache) for each test. Every test records the URLs the page
requests, its console and its JavaScript dialogs: no URL may carry the token,
no Content-Security-Policy violation and no uncaught error may happen.
"""

from __future__ import annotations

import http.client
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from lib.core import model

STATIC = Path(__file__).resolve().parents[2] / "lib" / "edge" / "console" / "static"
# Chromium switches that keep a headless test browser off the network.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--metrics-recording-only",
]
XSS = "<img src=x onerror=alert(1)>"
STATES = ("Queued", "Running", "Succeeded", "Failed", "Cancelled")
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
CSP_DIRECTIVES = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'",
    "img-src": "'self' data:", "connect-src": "'self'", "frame-ancestors": "'none'",
    "base-uri": "'none'", "form-action": "'none'",
}


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does)")
    browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                         args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Console:
    """A page of a fresh browser context, and what it did."""

    page: Page
    url: str
    requests: list[str] = field(default_factory=list)
    headers: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    alerts: list[str] = field(default_factory=list)  # alert/confirm/prompt dialogs
    tokens: set[str] = field(default_factory=set)

    def open(self) -> None:
        self.page.goto(f"{self.url}/console")

    def sign_in(self, token: str) -> None:
        self.tokens.add(token)
        self.open()
        self.page.get_by_label("Access token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()

    def show(self, parent: str, filter_text: str = "", page_size: str | None = None) -> None:
        self.page.get_by_label("Parent").fill(parent)
        self.page.get_by_label("Filter").fill(filter_text)
        if page_size is not None:
            self.page.get_by_label("Rows per page").select_option(page_size)
        self.page.get_by_role("button", name="Apply").click()

    def row(self, name: str) -> Any:
        return self.page.get_by_role("row").filter(
            has=self.page.get_by_role("link", name=name, exact=True))

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e or "Refused to" in e]


@pytest.fixture
def console(browser: Browser, stack: Any) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    seen = Console(page, stack.url)

    def on_request(request: Any) -> None:
        seen.requests.append(request.url)
        seen.headers.append((request.method, request.url, request.headers))

    def on_dialog(dialog: Any) -> None:
        seen.alerts.append(dialog.message)
        dialog.dismiss()

    page.on("request", on_request)
    page.on("console", lambda message: seen.errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(f"uncaught: {error}"))
    page.on("dialog", on_dialog)
    try:
        yield seen
    finally:
        context.close()
    # What every test must also hold.
    for token in seen.tokens:
        leaked = [url for url in seen.requests if token in url or token[:40] in url]
        assert not leaked, f"a request URL carries the token: {leaked[:1]}"
    assert not seen.csp_violations(), seen.csp_violations()
    assert not [e for e in seen.errors if e.startswith("uncaught")], seen.errors
    assert not seen.alerts, f"a JavaScript dialog opened: {seen.alerts}"


def create_job(api: Callable[..., requests.Response], parent: str, kind: str = "demo.countdown",
               **params: Any) -> str:
    response = api("POST", f"/v1/{parent}/jobs", json={"kind": kind, "params": params})
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


def wait_done(api: Callable[..., requests.Response], name: str) -> dict[str, Any]:
    response = api("POST", f"/v1/{name}:wait", json={"timeout": "30s"})
    assert response.status_code == 200 and response.json()["done"], response.text
    return dict(response.json())


def wait_running(api: Callable[..., requests.Response], name: str) -> None:
    deadline = time.monotonic() + 20
    while api("GET", f"/v1/{name}").json()["metadata"]["value"]["attempt"] < 1:
        assert time.monotonic() < deadline, f"{name} never started"
        time.sleep(0.05)


def stored(stack: Any, name: str, **fields: Any) -> None:
    """An operation written straight to the store (states the worker would take time to reach)."""
    parent = name.rsplit("/operations/", 1)[0] if "/operations/" in name else "operations"
    record = model.new_job(name=name, parent=parent, target=f"{parent}/jobs/x",
                           kind="demo.countdown", params={"steps": 3}, created_by="test",
                           now=model.utcnow())
    record.update(fields)
    stack.store.create(record)


# --- served files and headers --------------------------------------------------------------


def _get(stack: Any, method: str, path: str, headers: dict[str, str] | None = None
         ) -> tuple[int, http.client.HTTPMessage, bytes]:
    url = urlsplit(stack.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def _assert_security_headers(headers: http.client.HTTPMessage) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name
    policy = {part.split()[0]: " ".join(part.split()[1:])
              for part in headers["Content-Security-Policy"].split(";") if part.strip()}
    for directive, value in CSP_DIRECTIVES.items():
        assert policy.get(directive) == value, directive
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]


def test_the_page_needs_no_token_and_is_never_cached(stack: Any) -> None:
    status, headers, body = _get(stack, "GET", "/console")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"
    _assert_security_headers(headers)
    assert b"Access token" in body
    head_status, head_headers, head_body = _get(stack, "HEAD", "/console")
    assert (head_status, head_body) == (200, b"")
    assert head_headers["Content-Length"] == headers["Content-Length"]


def test_assets_have_hashed_names_and_a_long_immutable_cache(stack: Any) -> None:
    _, _, page = _get(stack, "GET", "/console")
    assets = re.findall(r'(?:src|href)="(console/assets/[^"]+)"', page.decode())
    assert {Path(a).suffix for a in assets} >= {".js", ".css"}
    for asset in set(assets):
        assert re.fullmatch(r"console/assets/[a-z]+\.[0-9a-f]{12}\.(js|css|svg)", asset), asset
        status, headers, body = _get(stack, "GET", f"/{asset}")
        assert status == 200 and body
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        _assert_security_headers(headers)
    # Modules import each other by hashed name too.
    app = next(a for a in assets if "/app." in a)
    imports = re.findall(r'from "\./([^"]+)"', _get(stack, "GET", f"/{app}")[2].decode())
    assert imports and all(re.fullmatch(r"[a-z]+\.[0-9a-f]{12}\.js", i) for i in imports)


@pytest.mark.parametrize("path", ["/console/assets/app.js", "/console/nothing", "/console/"],
                         ids=["an unhashed asset name", "an unknown file", "a trailing slash"])
def test_unknown_console_paths_are_404_with_the_same_headers(stack: Any, path: str) -> None:
    status, headers, body = _get(stack, "GET", path)
    assert status == 404
    assert b'"status":"NOT_FOUND"' in body
    _assert_security_headers(headers)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_console_are_405(stack: Any, method: str) -> None:
    status, headers, body = _get(stack, method, "/console", {"Content-Length": "0"})
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert b'"status":"UNIMPLEMENTED"' in body
    _assert_security_headers(headers)


def test_a_body_sent_to_the_console_is_never_waited_for(stack: Any) -> None:
    """A 405 goes out at once, not after the (here never sent) 10 MB body."""
    url = urlsplit(stack.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    try:
        connection.putrequest("POST", "/console")
        connection.putheader("Content-Length", str(10 * 1024 * 1024))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 405
        _assert_security_headers(response.headers)
    finally:
        connection.close()


def test_no_script_turns_data_into_markup() -> None:
    """Rendering goes through textContent and DOM nodes only (lib/edge/console/static/dom.js)."""
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|"
                           r"new Function|setAttribute\(\s*[\"']style|\.cssText")
    for script in STATIC.glob("*.js"):
        assert not forbidden.findall(script.read_text()), script.name
    page = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", page)


def test_the_first_load_weighs_under_100_kb(console: Console) -> None:
    console.open()
    expect(console.page.get_by_label("Access token")).to_be_visible()
    transferred = console.page.evaluate("""() => {
        const entries = [...performance.getEntriesByType("navigation"),
                         ...performance.getEntriesByType("resource")];
        return entries.reduce((sum, e) => sum + e.transferSize, 0);
    }""")
    print(f"console first load: {transferred / 1024:.1f} KiB transferred")
    assert 0 < transferred < 100 * 1024
    assert not console.errors, console.errors


# --- sign-in and the list ------------------------------------------------------------------


def test_sign_in_lists_operations_with_their_state_and_filters_them(
        console: Console, stack: Any, api: Callable[..., requests.Response], parent: str) -> None:
    succeeded = create_job(api, parent, steps=1, stepSeconds=0)
    failed = create_job(api, parent, steps=2, stepSeconds=0, failAtStep=1)
    wait_done(api, succeeded)
    wait_done(api, failed)
    cancelled = f"{parent}/operations/cancelled-one"
    stored(stack, cancelled, **model.cancelled_changes(now=model.utcnow(),
                                                       retention=timedelta(days=1)))
    queued = f"{parent}/operations/queued-one"
    stored(stack, queued)

    console.sign_in(stack.token())
    console.show(parent)
    page = console.page
    expect(page.get_by_role("row")).to_have_count(5)  # the header and four operations
    for name, state in [(succeeded, "Succeeded"), (failed, "Failed"),
                        (cancelled, "Cancelled"), (queued, "Queued")]:
        row = console.row(name)
        expect(row).to_contain_text(state)
        expect(row.get_by_role("progressbar")).to_have_attribute(
            "aria-valuenow", "100" if state == "Succeeded" else re.compile(r"\d+"))
        expect(row.get_by_role("button", name="Cancel", exact=True)).to_have_count(
            1 if state == "Queued" else 0)
    # Newest first.
    names = page.get_by_role("row").get_by_role("link").all_inner_texts()
    assert names[0] == queued

    page.get_by_label("Failed").check()
    expect(page.get_by_label("Filter")).to_have_value("error.code > 1")
    expect(console.row(failed)).to_be_visible()
    expect(page.get_by_role("row")).to_have_count(2)
    page.get_by_label("Cancelled").check()
    expect(console.row(cancelled)).to_be_visible()
    expect(page.get_by_role("row")).to_have_count(2)

    console.show(parent, 'done = false AND metadata.kind = "demo.countdown"')
    expect(console.row(queued)).to_be_visible()
    expect(page.get_by_role("row")).to_have_count(2)

    console.show(parent, "done = maybe")
    message = api("GET", f"/v1/{parent}/operations",
                  params={"filter": "done = maybe"}).json()["error"]["message"]
    expect(page.get_by_role("alert").filter(has_text=message)).to_be_visible()


@pytest.mark.parametrize(("parent_of", "surface"), [
    (lambda unique: "operations", "v1"),
    (lambda unique: f"projects/p-{unique}", "v3beta1"),
], ids=["the v1 operations collection", "a v3beta1 project"])
def test_every_parent_shape_lists_and_opens_on_its_surface(
        console: Console, stack: Any, unique: str, parent_of: Callable[[str], str],
        surface: str) -> None:
    parent = parent_of(unique)
    name = f"{parent}/operations/shape-{unique}" if surface == "v3beta1" else f"operations/{unique}"
    target = f"{parent}/jobs/{unique}"
    stored(stack, name, target=target)
    console.sign_in(stack.token())
    console.show(parent, f'metadata.target = "{target}"')
    expect(console.row(name)).to_contain_text("Queued")
    console.page.get_by_role("link", name=name).click()
    commands = console.page.locator("pre")
    expect(commands.filter(has_text="curl")).to_contain_text(f"{stack.url}/{surface}/{name}")
    cli = commands.filter(has_text="lib.cli")
    if surface == "v1":
        expect(cli).not_to_contain_text("--surface")
    else:
        expect(cli).to_contain_text(f"--surface {surface}")
    assert any(f"/{surface}/{name}" in url for url in console.requests)


def test_a_parent_no_surface_serves_is_refused_before_any_call(
        console: Console, stack: Any) -> None:
    console.sign_in(stack.token())
    expect(console.page.get_by_label("Parent")).to_be_visible()
    calls = len(console.requests)
    console.show("projects/a/b")
    expect(console.page.get_by_role("alert")).to_contain_text("Parent must be operations")
    assert len(console.requests) == calls


def test_pages_come_from_next_page_token(
        console: Console, stack: Any, parent: str) -> None:
    for i in range(55):
        stored(stack, f"{parent}/operations/page-{i:03d}",
               **model.succeeded_changes({}, now=model.utcnow(), retention=timedelta(days=1)))
    console.sign_in(stack.token())
    console.show(parent, page_size="50")
    page = console.page
    expect(page.get_by_role("row")).to_have_count(51)
    page.get_by_role("button", name="More").click()
    expect(page.get_by_role("row")).to_have_count(56)
    expect(page.get_by_role("button", name="More")).to_be_hidden()


def test_a_refused_token_brings_the_sign_in_back_with_the_api_message(
        console: Console, api: Callable[..., requests.Response]) -> None:
    bad = "not.a.token"
    message = api("GET", "/v1/operations",
                  headers={"Authorization": f"Bearer {bad}"}).json()["error"]["message"]
    console.sign_in(bad)
    page = console.page
    expect(page.get_by_role("alert").filter(has_text=message)).to_be_visible()
    expect(page.get_by_label("Access token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_sign_out_forgets_the_token(console: Console, stack: Any) -> None:
    token = stack.token()
    console.sign_in(token)
    page = console.page
    expect(page.get_by_label("Parent")).to_be_visible()
    stored_values = page.evaluate("Object.values(sessionStorage)")
    assert stored_values == [token]
    assert page.evaluate("localStorage.length") == 0
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Access token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_label("Access token")).to_be_visible()
    expect(page.get_by_label("Parent")).to_be_hidden()


def test_every_call_carries_the_token_in_the_authorization_header_only(
        console: Console, stack: Any, parent: str) -> None:
    token = stack.token()
    stored(stack, f"{parent}/operations/one")
    console.sign_in(token)
    console.show(parent)
    console.page.get_by_role("link", name=f"{parent}/operations/one").click()
    expect(console.page.get_by_role("heading", name="Summary")).to_be_visible()
    api_calls = [(method, url, headers) for method, url, headers in console.headers
                 if "/v1/" in url or "/v3beta1/" in url]
    assert len(api_calls) >= 2
    for _method, url, headers in api_calls:
        assert headers.get("authorization") == f"Bearer {token}", url
        assert token not in url
    assert all(url.startswith(stack.url) for url in console.requests), "only the service itself"


def test_the_console_works_from_the_keyboard(console: Console, stack: Any, parent: str) -> None:
    name = f"{parent}/operations/by-keyboard"
    stored(stack, name, attempt=1, state="RUNNING", statusMessage="Step 1 of 3")
    token = stack.token()
    console.tokens.add(token)
    console.open()
    page = console.page
    expect(page.get_by_label("Access token")).to_be_focused()
    page.keyboard.insert_text(token)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Enter")
    page.get_by_label("Parent").fill(parent)
    page.keyboard.press("Enter")  # submits the query form
    cancel = console.row(name).get_by_role("button", name="Cancel", exact=True)
    expect(cancel).to_be_visible()
    for _ in range(12):
        page.keyboard.press("Tab")
        if cancel.evaluate("button => button === document.activeElement"):
            break
    expect(cancel).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Reason")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(cancel).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name=name)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    assert stack.store.get(name)["cancelRequested"] is False


# --- live updates ----------------------------------------------------------------------------


def test_a_running_operation_progress_bar_moves_without_a_reload(
        console: Console, stack: Any, api: Callable[..., requests.Response], parent: str) -> None:
    console.sign_in(stack.token())
    console.show(parent)
    page = console.page
    page.evaluate("window.__sameDocument = true")
    name = create_job(api, parent, steps=6, stepSeconds=0.5)
    console.show(parent)
    bar = console.row(name).get_by_role("progressbar")
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = int(bar.get_attribute("aria-valuenow") or 0)
        if not seen or value != seen[-1]:
            seen.append(value)
        if value == 100:
            break
        time.sleep(0.1)
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == 100, seen
    expect(console.row(name)).to_contain_text("Succeeded")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"

    # Nothing runs any more: the list stops polling.
    time.sleep(0.5)
    before = sum("/operations?" in url for url in console.requests)
    time.sleep(2.5)
    assert sum("/operations?" in url for url in console.requests) == before


# --- cancel ------------------------------------------------------------------------------------


def cancel_from_row(console: Console, name: str, reason: str) -> None:
    page = console.page
    console.row(name).get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name="Confirm cancel").click()


def test_cancel_with_a_reason_ends_cancelled_and_records_the_reason(
        console: Console, stack: Any, api: Callable[..., requests.Response], parent: str) -> None:
    name = create_job(api, parent, steps=100, stepSeconds=0.5)
    wait_running(api, name)
    console.sign_in(stack.token())
    console.show(parent)
    expect(console.row(name)).to_contain_text("Running")
    cancel_from_row(console, name, "stuck on step 2")
    expect(console.row(name)).to_contain_text("Cancelled", timeout=20_000)
    cancels = [(url, headers) for method, url, headers in console.headers
               if method == "POST" and url.endswith(":cancel")]
    assert len(cancels) == 1
    assert cancels[0][1].get("x-goog-request-reason") == "stuck on step 2"
    operation = wait_done(api, name)
    assert operation["error"]["code"] == 1
    assert operation["metadata"]["value"]["cancelReason"] == "stuck on step 2"


def test_a_reason_that_looks_like_html_shows_as_text(
        console: Console, stack: Any, api: Callable[..., requests.Response], parent: str) -> None:
    name = create_job(api, parent, steps=100, stepSeconds=0.5)
    wait_running(api, name)
    console.sign_in(stack.token())
    console.show(parent)
    cancel_from_row(console, name, XSS)
    expect(console.row(name)).to_contain_text("Cancelled", timeout=20_000)
    console.page.get_by_role("link", name=name).click()
    page = console.page
    expect(page.get_by_role("heading", name="Cancellation")).to_be_visible()
    expect(page.get_by_text(XSS, exact=True).first).to_be_visible()
    assert page.locator('img[src="x"]').count() == 0
    assert page.evaluate("document.querySelectorAll('img').length") == 1  # the logo only
    time.sleep(0.3)  # an onerror handler would have run by now
    assert not console.alerts


def test_details_show_the_timeline_the_error_and_its_error_info(
        console: Console, stack: Any, parent: str) -> None:
    name = f"{parent}/operations/detailed"
    now = model.utcnow()
    stored(stack, name, attempt=1, cancelRequested=True,
           cancelRequestTime=now - timedelta(seconds=3), cancelRequestedBy="ops@example.com",
           cancelReason=XSS, cancelAcknowledgeTime=now - timedelta(seconds=2),
           **model.cancelled_changes(now=now, retention=timedelta(days=1),
                                     info={"requestedBy": "ops@example.com", "reason": XSS}))
    console.sign_in(stack.token())
    console.page.goto(f"{stack.url}/console#{name}")
    page = console.page
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    timeline = page.get_by_role("list").filter(has_text="Requested")
    expect(timeline).to_contain_text("Acknowledged")
    expect(timeline).to_contain_text("Ended")
    expect(timeline).to_contain_text("ops@example.com")
    expect(timeline).to_contain_text(XSS)
    expect(page.get_by_text("1 CANCELLED")).to_be_visible()
    expect(page.get_by_text("CANCELLED_BY_REQUEST")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_hidden()
    curl = page.locator("pre").filter(has_text="curl")
    expect(curl).to_contain_text(f'-H "Authorization: Bearer $TOKEN" {stack.url}/v1/{name}')
    expect(page.locator("pre").filter(has_text="python -m lib.cli get")).to_contain_text(
        f'python -m lib.cli get {name} --endpoint {stack.url} --token "$TOKEN"')
    assert page.locator('img[src="x"]').count() == 0


def test_a_viewer_refused_cancel_shows_the_api_message(
        console: Console, stack: Any, api: Callable[..., requests.Response], unique: str) -> None:
    parent = f"projects/alpha/locations/l-{unique}"  # alice@example.com only views these
    name = f"{parent}/operations/running"
    stored(stack, name, attempt=1, state="RUNNING", statusMessage="Step 1 of 3")
    viewer = stack.headers(subject="alice@example.com")
    refused = api("POST", f"/v1/{name}:cancel", headers=viewer, json={})
    assert refused.status_code == 403
    message = refused.json()["error"]["message"]

    console.sign_in(stack.token(subject="alice@example.com"))
    console.show(parent)
    cancel_from_row(console, name, "I only look")
    alert = console.page.get_by_role("dialog").get_by_role("alert")
    expect(alert).to_contain_text(message)
    expect(alert).to_contain_text("PERMISSION_DENIED")
    assert stack.store.get(name)["cancelRequested"] is False


def test_a_cancel_the_kind_does_not_support_shows_the_api_message(
        console: Console, stack: Any, api: Callable[..., requests.Response], parent: str) -> None:
    name = create_job(api, parent, kind="demo.atomic", steps=16, stepSeconds=0.5)
    wait_running(api, name)
    console.sign_in(stack.token())
    console.show(parent)
    cancel_from_row(console, name, "try anyway")
    alert = console.page.get_by_role("dialog").get_by_role("alert")
    expect(alert).to_contain_text("UNIMPLEMENTED")
    api("DELETE", f"/v1/{name}")


def test_delete_asks_first(console: Console, stack: Any, api: Callable[..., requests.Response],
                           parent: str) -> None:
    name = f"{parent}/operations/to-delete"
    stored(stack, name, **model.succeeded_changes({"steps": 3}, now=model.utcnow(),
                                                  retention=timedelta(days=1)))
    console.sign_in(stack.token())
    console.show(parent)
    page = console.page
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name="Response")).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Keep it").click()
    assert stack.store.get(name) is not None
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Confirm delete").click()
    expect(page.get_by_label("Parent")).to_be_visible()
    expect(page.get_by_role("link", name=name)).to_have_count(0)
    assert api("GET", f"/v1/{name}").status_code == 404


# --- scale ---------------------------------------------------------------------------------------


def test_the_list_renders_500_operations(console: Console, stack: Any,
                                         api: Callable[..., requests.Response],
                                         parent: str) -> None:
    now = model.utcnow()

    def write(i: int) -> None:
        stored(stack, f"{parent}/operations/bulk-{i:04d}", attempt=1, state="RUNNING",
               progressPercent=i % 100, statusMessage=f"Step {i}",
               createTime=now - timedelta(milliseconds=i), updateTime=now)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(500)))
    console.sign_in(stack.token())
    page = console.page
    expect(page.get_by_label("Parent")).to_be_visible()
    page.get_by_label("Parent").fill(parent)
    page.get_by_label("Rows per page").select_option("500")
    # Timed in the page, from the click to the first frame painted with 500 rows
    # (Playwright's wait_for_function would need eval, which the CSP refuses).
    elapsed = page.evaluate("""async () => {
        const started = performance.now();
        document.querySelector('#query-form button[type="submit"]').click();
        await new Promise((resolve) => {
            const check = () => document.querySelectorAll('#rows tr').length >= 500
                ? resolve() : requestAnimationFrame(check);
            check();
        });
        await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
        return (performance.now() - started) / 1000;
    }""")
    started = time.perf_counter()
    listed = api("GET", f"/v1/{parent}/operations", params={"pageSize": 500})
    api_seconds = time.perf_counter() - started
    assert len(listed.json()["operations"]) == 500
    print(f"console: 500 operations listed and rendered in {elapsed:.2f} s "
          f"(the List call alone: {api_seconds:.2f} s)")
    expect(page.get_by_role("row")).to_have_count(501)
    assert elapsed < 15
    # 500 running rows keep polling in one request a second, not one per row.
    time.sleep(2.2)
    lists = [u for u in console.requests if "/operations?" in u]
    assert len([u for u in console.requests if "/operations/" in u and "?" not in u]) == 0
    assert 2 <= len(lists) <= 5

"""The web console: ``GET /console`` and its static files, from the bundle.

Plain HTML, CSS and JavaScript modules under ``static/``, served as they are
in the repository (no build step). Each asset is served under a name that
carries its content hash (``console/assets/app.1f2e3d4c5b6a.js``) with a
year-long immutable cache; the page names the hashed assets and is never
cached, so a deploy is picked up at the next load. The files are read, their
references rewritten and their hashes computed once, on the first console
request (nothing happens at import time).

The page calls the public API only, with the user's own bearer token: this
module serves files and nothing else, so it needs no token itself.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import flask
from google.api_core import exceptions

from lib.core import errors

log = logging.getLogger("operations.console")

STATIC_DIR = Path(__file__).parent / "static"
PAGE = "index.html"
PAGE_PATH = "/console"
ASSET_DIR = "console/assets/"  # relative to the page, so a path prefix in front still works
ALLOWED_METHODS = "GET, HEAD"

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
])
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PAGE_CACHE = "no-store"
ASSET_CACHE = "public, max-age=31536000, immutable"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# `from "./x.js"` and `import("./x.js")` in a module; `console/assets/x` in the page.
_MODULE_IMPORT = re.compile(r"""(\bfrom\s*|\bimport\s*\(?\s*)(["'])\./([\w.-]+\.js)\2""")
_PAGE_REFERENCE = re.compile(re.escape(ASSET_DIR) + r"([\w.-]+)")


def is_console_path(path: str) -> bool:
    """Whether a request path (without its query) belongs to the console."""
    return path == PAGE_PATH or path.startswith(PAGE_PATH + "/")


@dataclass(frozen=True)
class StaticFile:
    """One file as served: its bytes, their gzip form (when smaller) and type."""

    body: bytes
    gzipped: bytes | None
    content_type: str

    @classmethod
    def of(cls, body: bytes, suffix: str) -> StaticFile:
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        return cls(body, packed if len(packed) < len(body) else None,
                   _CONTENT_TYPES.get(suffix, "application/octet-stream"))


@dataclass(frozen=True)
class Bundle:
    """The page and the assets by their hashed names."""

    page: StaticFile
    assets: Mapping[str, StaticFile]


def build_bundle(directory: Path = STATIC_DIR) -> Bundle:
    """Reads ``directory``, names each asset by its content hash and rewrites
    the references (page → assets, module → module) to those names.

    Raises:
        ValueError: a reference names a file that does not exist, or modules
            import each other in a cycle (a hash would depend on itself).
    """
    sources = {path.name: path.read_bytes() for path in sorted(directory.iterdir())
               if path.is_file() and path.name != PAGE}
    hashed: dict[str, str] = {}  # source name -> hashed name
    assets: dict[str, StaticFile] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> str:
        if name in hashed:
            return hashed[name]
        if name not in sources:
            raise ValueError(f"console: {seen[-1] if seen else PAGE} refers to "
                             f"a missing file {name!r}")
        if name in seen:
            raise ValueError(f"console: modules import each other in a cycle: {seen}")
        body = sources[name]
        if name.endswith(".js"):
            text = _MODULE_IMPORT.sub(
                lambda m: f"{m[1]}{m[2]}./{resolve(m[3], (*seen, name))}{m[2]}",
                body.decode("utf-8"))
            body = text.encode("utf-8")
        stem, dot, suffix = name.rpartition(".")
        digest = hashlib.sha256(body).hexdigest()[:12]
        hashed[name] = f"{stem}.{digest}{dot}{suffix}" if dot else f"{name}.{digest}"
        assets[hashed[name]] = StaticFile.of(body, f".{suffix}")
        return hashed[name]

    page = (directory / PAGE).read_text(encoding="utf-8")
    page = _PAGE_REFERENCE.sub(lambda m: ASSET_DIR + resolve(m[1]), page)
    return Bundle(StaticFile.of(page.encode("utf-8"), ".html"), assets)


class Console:
    """Answers every request whose path :func:`is_console_path` accepts."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self._directory = directory
        self._bundle: Bundle | None = None
        self._lock = threading.Lock()

    def bundle(self) -> Bundle:
        """The files, read and hashed on first use."""
        if self._bundle is None:
            with self._lock:
                if self._bundle is None:
                    self._bundle = build_bundle(self._directory)
        return self._bundle

    def respond(self, request: flask.Request, path: str) -> flask.Response:
        """The page, an asset, or an AIP-193 error, with the security headers."""
        # No console request has a body to read: mark it read, so that
        # functions-framework (which reads every body after the response)
        # neither waits for nor buffers one; gunicorn drains what arrives.
        request._cached_data = b""
        try:
            response = self._answer(request, path)
        except (OSError, UnicodeDecodeError, ValueError):
            # A bundle deployed without its files: logged here, never shown.
            log.exception("the console's files cannot be served")
            response = _error(errors.internal_error())
        response.headers.update(SECURITY_HEADERS)
        return response

    def _answer(self, request: flask.Request, path: str) -> flask.Response:
        if request.method not in ("GET", "HEAD"):
            response = _error(errors.error(
                exceptions.MethodNotAllowed,
                f"Method {request.method} is not supported on this path.",
                allowed=ALLOWED_METHODS))
            response.headers["Allow"] = ALLOWED_METHODS
        elif path == PAGE_PATH:
            response = _file(self.bundle().page, request, PAGE_CACHE)
        else:
            asset = self.bundle().assets.get(path.removeprefix("/" + ASSET_DIR))
            if asset is not None and path.startswith("/" + ASSET_DIR):
                response = _file(asset, request, ASSET_CACHE)
            else:
                response = _error(errors.error(exceptions.NotFound, "No such path.",
                                               "PATH_NOT_FOUND"))
        return response


def _file(file: StaticFile, request: flask.Request, cache: str) -> flask.Response:
    gzipped = file.gzipped is not None and request.accept_encodings["gzip"] > 0
    body = file.gzipped if gzipped and file.gzipped is not None else file.body
    response = flask.Response(body, status=200, content_type=file.content_type)
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = cache
    return response


def _error(exc: exceptions.GoogleAPICallError) -> flask.Response:
    response = flask.Response(json.dumps(errors.error_body(exc), separators=(",", ":")),
                              status=errors.http_status(exc), mimetype="application/json")
    response.headers["Cache-Control"] = PAGE_CACHE
    return response

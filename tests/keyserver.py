"""A local stand-in for Google's key and tokeninfo endpoints, on 127.0.0.1.

Serves JSON documents at chosen paths (JWKS, x509 maps) and a tokeninfo
endpoint in Google's documented shapes, and records every request so tests
can count hits and inspect request lines.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    request_line: str
    body: bytes


@dataclass
class _Document:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class KeyServer:
    """Start with ``start()``, stop with ``stop()``; thread-safe recording."""

    TOKENINFO_PATH = "/tokeninfo"

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.tokeninfo: dict[str, dict[str, str]] = {}
        self.tokeninfo_status: int | None = None  # force an error status
        self._documents: dict[str, _Document] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> KeyServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def url(self, path: str) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def serve_json(
        self, path: str, data: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> str:
        """Serves ``data`` at ``path``; returns its URL."""
        with self._lock:
            self._documents[path] = _Document(status, json.dumps(data).encode(), headers or {})
        return self.url(path)

    def hits(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def _document(self, path: str) -> _Document | None:
        with self._lock:
            return self._documents.get(path)


def closed_port_url(path: str = "/") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def _handler(server: KeyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._serve(self.rfile.read(length))

        def _serve(self, body: bytes) -> None:
            path = urlsplit(self.path).path
            server._record(Recorded(self.command, path, self.requestline, body))
            if path == KeyServer.TOKENINFO_PATH and self.command == "POST":
                self._tokeninfo(body)
                return
            document = server._document(path)
            if document is None:
                self._send(404, b'{"error": "not found"}', {})
            else:
                self._send(document.status, document.body, document.headers)

        def _tokeninfo(self, body: bytes) -> None:
            if server.tokeninfo_status is not None:
                self._send(server.tokeninfo_status, b'{"error": "internal"}', {})
                return
            token = parse_qs(body.decode()).get("access_token", [""])[0]
            answer = server.tokeninfo.get(token)
            if answer is None:
                error = {"error": "invalid_token", "error_description": "Invalid Value"}
                self._send(400, json.dumps(error).encode(), {})
            else:
                self._send(200, json.dumps(answer).encode(), {})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler

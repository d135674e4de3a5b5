"""Structured logs: one JSON object per line, the form Cloud Logging parses
from a function's output (``severity``, ``message``, trace).

Request context (trace, operation, principal) lives in a context variable so
every line of a request carries it. Tokens never reach a log line: nothing
here reads headers other than the trace ones.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({}))
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?")
_project: list[str] = []  # for the trace field of the current span (configure)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        entry.update(_context.get())
        entry.update(_span_fields())
        entry.update(getattr(record, "json_fields", None) or {})
        if record.exc_info:
            # The stack goes to the log, never to a response.
            entry["stack_trace"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


_ENCODER = json.JSONEncoder(default=str)  # json.dumps(entry, default=str), built once


def info(logger: logging.Logger, message: str, fields: Mapping[str, Any]) -> None:
    """``logger.info(message, extra={"json_fields": fields})`` without looking up
    the caller's file and line, which no line of ours shows: for the lines
    every request writes."""
    if logger.isEnabledFor(logging.INFO):
        logger.handle(logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0,
                                        message, (), None, "(unknown function)",
                                        {"json_fields": fields}))


def configure(level: str = "INFO", project: str | None = None) -> None:
    """Sends every logger's records, as JSON lines, to stderr (idempotent).

    With ``project``, a line written inside an OpenTelemetry span carries that
    span's trace and span id, so Cloud Logging shows it under its trace.
    """
    if project:
        _project[:] = [project]
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)


def _span_fields() -> dict[str, Any]:
    """Cloud Logging trace fields of the current span; {} outside one. Read
    only if OpenTelemetry is loaded already: without it there is no span."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None or not _project:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    trace_name = f"projects/{_project[0]}/traces/{context.trace_id:032x}"
    return {"logging.googleapis.com/trace": trace_name,
            "logging.googleapis.com/spanId": f"{context.span_id:016x}",
            "logging.googleapis.com/trace_sampled": bool(context.trace_flags.sampled)}


class HeaderSource(Protocol):
    """What trace_fields reads: a Mapping, or werkzeug's Headers as they are."""

    def get(self, key: str, default: str) -> str: ...


def trace_fields(headers: HeaderSource, project: str) -> dict[str, str]:
    """Cloud Logging trace fields from ``traceparent`` or ``X-Cloud-Trace-Context``."""
    trace = span = None
    found = _TRACEPARENT.match(headers.get("traceparent", "").strip())
    if found:
        trace, span = found.group(1), found.group(2)
    else:
        cloud = _CLOUD_TRACE.match(headers.get("X-Cloud-Trace-Context", "").strip())
        if cloud:
            trace = cloud.group(1).lower()
            span = format(int(cloud.group(2)), "016x") if cloud.group(2) else None
    if not trace:
        return {}
    fields = {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace}"}
    if span:
        fields["logging.googleapis.com/spanId"] = span
    return fields


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Adds fields to every log line written inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Adds fields to the current block's context (e.g. the principal once known)."""
    _context.set({**_context.get(), **fields})

"""Traces and metrics with OpenTelemetry: the API in the code; the SDK and the
exporters, chosen by the standard ``OTEL_*`` variables (lib/core/otel_setup.py),
loaded on the first span or measurement of the process, not at ``import main``.
With no exporter chosen every function here returns at once.

Spans: a server span per HTTP request (``server_span``), a producer span per
job message (``publish_span``, whose context travels in the message's W3C
``traceparent`` attribute), and ``operations.run`` per worker run
(``traced_run``), a child of the publish span. Cancel, delete and wait link to
the operation's trace (``link_operation``, from the record's ``traceContext``).
Span events of the cancel lifecycle: ``cancel_event``. Metrics: ``record_*``.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from lib.core.otel_setup import Providers, providers

_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=([01]))?")
_RUN_SECONDS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class HeaderSource(Protocol):
    def get(self, key: str, default: str) -> str: ...


def tracing() -> bool:
    """Whether spans are recorded in this process."""
    return providers().tracer is not None


def flush(timeout_millis: int = 2000) -> None:
    """Exports finished spans now (a worker's CPU may be throttled once its
    delivery is answered)."""
    provider = providers().tracer_provider
    if provider is not None:
        provider.force_flush(timeout_millis)


# Context propagation: W3C traceparent, and Google's X-Cloud-Trace-Context.


def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def _incoming(headers: HeaderSource) -> Any:
    """The context of an incoming request: its ``traceparent``, else its
    ``X-Cloud-Trace-Context`` (``TRACE_ID/SPAN_ID;o=1``)."""
    from opentelemetry import trace

    carrier = {key: headers.get(key, "") for key in ("traceparent", "tracestate")}
    context = _propagator().extract({k: v for k, v in carrier.items() if v})
    if trace.get_current_span(context).get_span_context().is_valid:
        return context
    found = _CLOUD_TRACE.match(headers.get("X-Cloud-Trace-Context", "").strip())
    if not found:
        return None
    trace_id = int(found.group(1), 16)
    span_id = int(found.group(2) or 0) & 0xFFFFFFFFFFFFFFFF or secrets.randbits(64) or 1
    if not trace_id:
        return None
    parent = trace.SpanContext(trace_id, span_id, is_remote=True,
                               trace_flags=trace.TraceFlags(0 if found.group(3) == "0" else 1))
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def current_traceparent() -> str | None:
    """The current span's context as a W3C ``traceparent``, or None."""
    if not tracing():
        return None
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continued_from(attributes: Mapping[str, str] | None) -> Iterator[None]:
    """Makes the context carried in a message's attributes the current one."""
    if not tracing() or not attributes:
        yield
        return
    from opentelemetry import context

    token = context.attach(_propagator().extract(
        {key: str(attributes[key]) for key in ("traceparent", "tracestate") if key in attributes}))
    try:
        yield
    finally:
        context.detach(token)


# Spans.


class RequestSpan:
    """The server span of one HTTP request (a no-op one when tracing is off)."""

    def __init__(self, span: Any = None, method: str = "") -> None:
        self._span = span
        self._method = method

    def finish(self, status: int, route: str | None) -> None:
        """Names the span by its route and records the response status."""
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        if route:
            self._span.update_name(f"{self._method} {route}")
            self._span.set_attribute("http.route", route)
        self._span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self._span.set_status(Status(StatusCode.ERROR))


@contextmanager
def server_span(method: str, headers: HeaderSource) -> Iterator[RequestSpan]:
    """A SERVER span around one request, continuing the caller's trace."""
    tracer = providers().tracer
    if tracer is None:
        yield RequestSpan()
        return
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(
            method, context=_incoming(headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False, set_status_on_exception=False) as span:
        yield RequestSpan(span, method)


@contextmanager
def publish_span(topic: str, operation: str) -> Iterator[dict[str, str]]:
    """A PRODUCER span around one publish; yields the attributes to put on the
    message so that its consumer continues this trace."""
    tracer = providers().tracer
    if tracer is None:
        yield {}
        return
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(
            f"{topic} publish", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "gcp_pubsub", "messaging.operation.type": "send",
                        "messaging.destination.name": topic, "operations.name": operation}):
        carrier: dict[str, str] = {}
        _propagator().inject(carrier)
        yield carrier


def link_operation(record: Mapping[str, Any] | None) -> None:
    """Links the current span to the trace the operation was created in."""
    if record is None or not record.get("traceContext") or not tracing():
        return
    from opentelemetry import trace

    created = trace.get_current_span(_propagator().extract(
        {"traceparent": str(record["traceContext"])})).get_span_context()
    current = trace.get_current_span()
    if created.is_valid and current.is_recording():
        current.add_link(created, {"operations.name": str(record["name"]),
                                   "operations.link": "created"})


# The worker's run span and the per-run metrics.


@dataclass
class _Run:
    name: str
    span: Any
    kind: str = ""
    claimed_at: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


_current_run: ContextVar[_Run | None] = ContextVar("operations_run", default=None)
_runs: dict[str, _Run] = {}  # by operation name: where a cancel event of another thread goes
_runs_lock = threading.Lock()

R = TypeVar("R", bound=Callable[..., str])


def traced_run(run: R) -> R:
    """Decorates ``OperationWorker.run(name) -> outcome``: an ``operations.run``
    span (attributes ``operations.name``, ``.kind``, ``.attempt``, ``.outcome``),
    ``operations.run.duration`` and ``operations.running`` around it."""

    @functools.wraps(run)
    def traced(worker: Any, name: str) -> str:
        telemetry = providers()
        if telemetry.tracer is None and telemetry.meter is None:
            return run(worker, name)
        outcome = "error"
        with _run_span(telemetry, name) as current:
            token = _current_run.set(current)
            try:
                outcome = run(worker, name)
            finally:
                _current_run.reset(token)
                _end_run(current, outcome)
        return outcome

    return traced  # type: ignore[return-value]


@contextmanager
def _run_span(telemetry: Providers, name: str) -> Iterator[_Run]:
    if telemetry.tracer is None:
        yield _Run(name, None)
        return
    from opentelemetry.trace import SpanKind

    try:
        with telemetry.tracer.start_as_current_span(
                "operations.run", kind=SpanKind.CONSUMER,
                attributes={"operations.name": name}) as span:
            current = _Run(name, span)
            with _runs_lock:
                _runs[name] = current
            try:
                yield current
            finally:
                with _runs_lock:
                    if _runs.get(name) is current:
                        del _runs[name]
    finally:
        flush()


def claimed(record: Mapping[str, Any]) -> None:
    """The run has claimed ``record``: its kind and attempt go on the run span,
    the first claim's wait since creation into ``operations.queue_latency``,
    and ``operations.running`` counts it until the run ends."""
    current = _current_run.get()
    if current is None:
        return
    current.kind = str(record.get("kind", ""))
    current.claimed_at = time.monotonic()
    attempt = int(record.get("attempt", 0))
    if current.span is not None:
        current.span.set_attribute("operations.kind", current.kind)
        current.span.set_attribute("operations.attempt", attempt)
    instruments = _instruments()
    if instruments is None:
        return
    created = record.get("createTime")
    if attempt == 1 and not record.get("continuations") and isinstance(created, datetime):
        waited = (datetime.now(UTC) - created).total_seconds() * 1000
        instruments.queue_latency.record(max(0.0, waited), {"kind": current.kind})
    instruments.running.add(1, {"kind": current.kind})


def _end_run(current: _Run, outcome: str) -> None:
    if current.span is not None:
        current.span.set_attribute("operations.outcome", outcome)
        if outcome == "error":
            from opentelemetry.trace import Status, StatusCode

            current.span.set_status(Status(StatusCode.ERROR))
    instruments = _instruments()
    if instruments is None or current.claimed_at is None:
        return
    instruments.running.add(-1, {"kind": current.kind})
    instruments.run_duration.record(time.monotonic() - current.claimed_at,
                                    {"kind": current.kind, "outcome": outcome})


def cancel_event(kind: str, operation: str | None = None, **attributes: Any) -> None:
    """Adds the span event ``operations.cancel.<kind>`` ("requested",
    "acknowledged" or "forced"): to the run span of ``operation`` when this
    process runs it (whatever thread calls), else to the current span."""
    if not tracing():
        return
    from opentelemetry import trace

    span = None
    if operation is not None:
        with _runs_lock:
            current = _runs.get(operation)
        span = current.span if current is not None else None
    if span is None:
        span = trace.get_current_span()
    if span.is_recording():
        values = {key: value for key, value in attributes.items() if value is not None}
        if operation is not None:
            values.setdefault("operations.name", operation)
        span.add_event(f"operations.cancel.{kind}", values)


# Metrics: the instruments, created once on first use.


@dataclass(frozen=True)
class _Instruments:
    created: Any
    ended: Any
    cancel_requested: Any
    cancel_ack_latency: Any
    cancel_forced: Any
    queue_latency: Any
    run_duration: Any
    running: Any


@functools.cache
def _instruments() -> _Instruments | None:
    meter = providers().meter
    if meter is None:
        return None
    return _Instruments(
        created=meter.create_counter(
            "operations.created", unit="{operation}", description="Operations created."),
        ended=meter.create_counter(
            "operations.ended", unit="{operation}",
            description="Operations that ended, by kind and google.rpc.Code."),
        cancel_requested=meter.create_counter(
            "operations.cancel.requested", unit="{operation}",
            description="Cancels that changed an operation."),
        cancel_ack_latency=meter.create_histogram(
            "operations.cancel.ack_latency", unit="ms",
            description="From a cancel request to the running handler seeing it."),
        cancel_forced=meter.create_counter(
            "operations.cancel.forced", unit="{operation}",
            description="Cancelled operations ended by force after the grace."),
        queue_latency=meter.create_histogram(
            "operations.queue_latency", unit="ms",
            description="From an operation's creation to its first claim by a worker."),
        run_duration=meter.create_histogram(
            "operations.run.duration", unit="s",
            description="How long a worker ran an operation, by kind and outcome.",
            explicit_bucket_boundaries_advisory=list(_RUN_SECONDS_BUCKETS)),
        running=meter.create_up_down_counter(
            "operations.running", unit="{operation}",
            description="Operations running now in this instance."),
    )


def record_created(kind: str) -> None:
    if (instruments := _instruments()) is not None:
        instruments.created.add(1, {"kind": kind})


def record_ended(kind: str, code: int) -> None:
    """Counts an operation that has just ended with ``code`` (once: where its
    end committed)."""
    if (instruments := _instruments()) is not None:
        instruments.ended.add(1, {"kind": kind, "code": code})


def record_cancel_requested() -> None:
    if (instruments := _instruments()) is not None:
        instruments.cancel_requested.add(1)


def record_cancel_ack(latency_ms: float, **attributes: Any) -> None:
    """A running handler saw its cancel ``latency_ms`` after it was requested."""
    if (instruments := _instruments()) is not None:
        instruments.cancel_ack_latency.record(max(0.0, latency_ms), attributes or None)


def record_forced(**attributes: Any) -> None:
    """A cancelled operation was ended by force after its grace."""
    if (instruments := _instruments()) is not None:
        instruments.cancel_forced.add(1, attributes or None)

"""An OTLP/HTTP receiver on 127.0.0.1, in process: what a collector would get.

Decodes ``ExportTraceServiceRequest`` (``POST /v1/traces``) and
``ExportMetricsServiceRequest`` (``POST /v1/metrics``) with opentelemetry-proto
and keeps the spans and metric points, for tests and ``make trace-demo``.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER",
              5: "CONSUMER"}


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    instance: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    links: list[tuple[str, str, dict[str, Any]]]
    start_ns: int
    end_ns: int
    status: int

    @property
    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


@dataclass
class Point:
    """One metric data point as exported (cumulative values)."""

    metric: str
    instance: str
    attributes: dict[str, Any]
    time_ns: int
    value: float = 0.0  # sums and gauges
    count: int = 0  # histograms
    total: float = 0.0
    bucket_counts: list[int] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` serves ``receiver.endpoint``."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.points: list[Point] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    receiver._traces(body)
                    answer = trace_service_pb2.ExportTraceServiceResponse()
                elif self.path == "/v1/metrics":
                    receiver._metrics(body)
                    answer = metrics_service_pb2.ExportMetricsServiceResponse()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = answer.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _traces(self, body: bytes) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(Span(
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(), name=span.name,
                        kind=SPAN_KINDS.get(span.kind, str(span.kind)),
                        service=str(resource.get("service.name", "")),
                        instance=str(resource.get("service.instance.id", "")),
                        attributes=_attributes(span.attributes),
                        events=[(event.name, _attributes(event.attributes))
                                for event in span.events],
                        links=[(link.trace_id.hex(), link.span_id.hex(),
                                _attributes(link.attributes)) for link in span.links],
                        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
                        status=span.status.code))
        with self._lock:
            self.spans.extend(spans)

    def _metrics(self, body: bytes) -> None:
        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        points = []
        for resource_metrics in request.resource_metrics:
            resource = _attributes(resource_metrics.resource.attributes)
            instance = str(resource.get("service.instance.id", ""))
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    data = metric.WhichOneof("data")
                    if data in ("sum", "gauge"):
                        for point in getattr(metric, data).data_points:
                            value = (point.as_int if point.WhichOneof("value") == "as_int"
                                     else point.as_double)
                            points.append(Point(metric.name, instance,
                                                _attributes(point.attributes),
                                                point.time_unix_nano, value=value))
                    elif data == "histogram":
                        for point in metric.histogram.data_points:
                            points.append(Point(
                                metric.name, instance, _attributes(point.attributes),
                                point.time_unix_nano, count=point.count, total=point.sum,
                                bucket_counts=list(point.bucket_counts),
                                bounds=list(point.explicit_bounds)))
        with self._lock:
            self.points.extend(points)

    # Reading what arrived.

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def wait_for(self, found: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Polls ``found()`` until it is truthy; returns it (or the last falsy value)."""
        deadline = time.monotonic() + timeout
        while True:
            result = found()
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.1)

    def latest(self, metric: str) -> dict[tuple[tuple[str, Any], ...], Point]:
        """The newest cumulative point of ``metric`` per (instance, attributes)."""
        newest: dict[tuple[Any, ...], Point] = {}
        with self._lock:
            for point in self.points:
                if point.metric != metric:
                    continue
                key = (point.instance, *sorted(point.attributes.items()))
                if key not in newest or point.time_ns >= newest[key].time_ns:
                    newest[key] = point
        return {key: point for key, point in newest.items()}

    def total(self, metric: str, **attributes: Any) -> float:
        """The metric's value summed over instances: for sums, the cumulative
        value; for histograms, the count. Only points with ``attributes``."""
        value = 0.0
        for point in self.latest(metric).values():
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                value += point.count if point.bounds or point.bucket_counts else point.value
        return value

    def histogram_sum(self, metric: str, **attributes: Any) -> float:
        return sum(point.total for point in self.latest(metric).values()
                   if all(point.attributes.get(k) == v for k, v in attributes.items()))


def render_tree(spans: list[Span]) -> str:
    """One trace as an indented tree: name, kind, service, duration, key
    attributes, events and links."""
    by_id = {span.span_id: span for span in spans}
    children: dict[str, list[Span]] = {}
    roots = []
    for span in sorted(spans, key=lambda s: s.start_ns):
        if span.parent_span_id and span.parent_span_id in by_id:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    lines: list[str] = []
    start = min((span.start_ns for span in spans), default=0)

    def show(span: Span, depth: int) -> None:
        pad = "  " * depth
        offset = (span.start_ns - start) / 1e6
        duration = (span.end_ns - span.start_ns) / 1e6
        shown = {k: v for k, v in span.attributes.items()
                 if k.startswith("operations.") or k in ("http.response.status_code",)}
        attrs = " ".join(f"{k}={v}" for k, v in sorted(shown.items()))
        lines.append(f"{pad}{span.name} [{span.kind} {span.service}] "
                     f"+{offset:.0f}ms {duration:.0f}ms {attrs}".rstrip())
        for name, _values in span.events:
            lines.append(f"{pad}  * event {name}")
        for trace_id, span_id, _values in span.links:
            lines.append(f"{pad}  ~ link {trace_id}/{span_id}")
        for child in children.get(span.span_id, []):
            show(child, depth + 1)

    for root in roots:
        if root.parent_span_id:
            lines.append(f"(parent {root.parent_span_id}, outside this service)")
        show(root, 0)
    return "\n".join(lines)

"""OpenTelemetry providers for this process, from the standard ``OTEL_*``
variables; built once, on first use (lib/core/telemetry.py asks for them).

    OTEL_TRACES_EXPORTER     ``otlp`` (OTLP over HTTP, ``http/protobuf``),
                             ``gcp_trace`` (Cloud Trace), ``console`` or
                             ``none``; comma-separated for several. Default:
                             ``otlp`` when an OTLP endpoint is set, else ``none``
    OTEL_METRICS_EXPORTER    ``otlp``, ``gcp_monitoring`` (Cloud Monitoring),
                             ``console`` or ``none``; the same default
    OTEL_EXPORTER_OTLP_ENDPOINT (or ``..._TRACES_ENDPOINT``/``..._METRICS_ENDPOINT``)
    OTEL_SERVICE_NAME        default ``operations``
    OTEL_SDK_DISABLED        ``true`` turns everything off
    OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_RESOURCE_ATTRIBUTES are read by the SDK itself.

With neither exporter chosen nothing is built: no SDK, no exporter, not even
the API is imported. The exporters are imported by name only when chosen.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("operations.telemetry")

TRACER_NAME = METER_NAME = "operations"
DEFAULT_SERVICE_NAME = "operations"
# One id per process: ``operations.running`` is counted per instance.
INSTANCE_ID = uuid.uuid4().hex

_TRACE_EXPORTERS = {
    "otlp": ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    "otlp_proto_http": ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                        "OTLPSpanExporter"),
    "gcp_trace": ("opentelemetry.exporter.cloud_trace", "CloudTraceSpanExporter"),
    "console": ("opentelemetry.sdk.trace.export", "ConsoleSpanExporter"),
}
_METRIC_EXPORTERS = {
    "otlp": ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    "otlp_proto_http": ("opentelemetry.exporter.otlp.proto.http.metric_exporter",
                        "OTLPMetricExporter"),
    "gcp_monitoring": ("opentelemetry.exporter.cloud_monitoring",
                       "CloudMonitoringMetricsExporter"),
    "console": ("opentelemetry.sdk.metrics.export", "ConsoleMetricExporter"),
}
@dataclass(frozen=True)
class Exporters:
    """The exporter names chosen for each signal (empty: that signal is off)."""

    traces: tuple[str, ...]
    metrics: tuple[str, ...]


def exporters_from_env(environ: Mapping[str, str]) -> Exporters:
    """Which exporters the ``OTEL_*`` variables ask for. Unknown names are
    dropped with a warning: telemetry never stops the service."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Exporters((), ())

    def chosen(variable: str, signal_endpoint: str, known: Mapping[str, Any]) -> tuple[str, ...]:
        endpoint = (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
                    or environ.get(signal_endpoint, "").strip())
        raw = environ.get(variable, "").strip().lower() or ("otlp" if endpoint else "none")
        names = []
        for name in (part.strip() for part in raw.split(",")):
            if name in ("", "none"):
                continue
            if name not in known:
                log.warning("unknown OpenTelemetry exporter; ignored",
                            extra={"json_fields": {"variable": variable, "exporter": name}})
                continue
            names.append(name)
        return tuple(dict.fromkeys(names))

    return Exporters(
        chosen("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", _TRACE_EXPORTERS),
        chosen("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", _METRIC_EXPORTERS),
    )


@dataclass
class Providers:
    tracer: Any = None  # an SDK Tracer, None when traces are off
    meter: Any = None  # an SDK Meter, None when metrics are off
    tracer_provider: Any = None
    meter_provider: Any = None


_lock = threading.Lock()
_configured: list[Providers] = []


def providers() -> Providers:
    """This process's providers, built from ``os.environ`` on the first call."""
    if not _configured:
        with _lock:
            if not _configured:
                _configured.append(_configure(os.environ))
    return _configured[0]


def _configure(environ: Mapping[str, str]) -> Providers:
    chosen = exporters_from_env(environ)
    if not chosen.traces and not chosen.metrics:
        return Providers()
    for variable in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                     "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"):
        if environ.get(variable, "http/protobuf") != "http/protobuf":
            log.warning("only the http/protobuf OTLP protocol is installed; using it",
                        extra={"json_fields": {"variable": variable}})
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({
        "service.name": environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
        "service.instance.id": INSTANCE_ID,
    })
    if any(name.startswith("gcp_") for name in chosen.traces + chosen.metrics):
        resource = _on_google_cloud(resource)
    telemetry = Providers()
    exporters = [_exporter(_TRACE_EXPORTERS[name]) for name in chosen.traces]
    if any(exporters):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
        for exporter in filter(None, exporters):
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        telemetry.tracer_provider = provider
        telemetry.tracer = provider.get_tracer(TRACER_NAME)
    readers = [_exporter(_METRIC_EXPORTERS[name]) for name in chosen.metrics]
    if any(readers):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[PeriodicExportingMetricReader(exporter)
                            for exporter in filter(None, readers)])
        metrics.set_meter_provider(meter_provider)
        telemetry.meter_provider = meter_provider
        telemetry.meter = meter_provider.get_meter(METER_NAME)
    return telemetry


def _exporter(spec: tuple[str, str]) -> Any:
    """An exporter instance, or None (with a warning) if it cannot be built."""
    module_name, class_name = spec
    try:
        module = __import__(module_name, fromlist=[class_name])
        exporter_class = getattr(module, class_name)
        if class_name == "CloudMonitoringMetricsExporter":
            # Instances of a function write the same series: a label per
            # instance keeps Cloud Monitoring from refusing their points.
            return exporter_class(add_unique_identifier=True)
        return exporter_class()
    except Exception as exc:
        log.warning("OpenTelemetry exporter unavailable; that signal is off",
                    extra={"json_fields": {"exporter": class_name, "error": type(exc).__name__}})
        return None


def _on_google_cloud(resource: Any) -> Any:
    """``resource`` plus what the GCP detector finds (Cloud Run, GCE...)."""
    try:
        from opentelemetry.resourcedetector.gcp_resource_detector import (
            GoogleCloudResourceDetector,
        )

        return resource.merge(GoogleCloudResourceDetector().detect())
    except Exception as exc:
        log.warning("Google Cloud resource detection failed",
                    extra={"json_fields": {"error": type(exc).__name__}})
        return resource

"""Telemetry configuration from the OTEL_* variables, cold start, and the log
fields of the current span."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace

from lib.core import logs, otel_setup, telemetry

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("environ", "traces", "metrics"), [
    ({}, (), ()),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ("otlp",), ("otlp",)),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
     ("otlp",), ()),
    ({"OTEL_TRACES_EXPORTER": "gcp_trace", "OTEL_METRICS_EXPORTER": "gcp_monitoring"},
     ("gcp_trace",), ("gcp_monitoring",)),
    ({"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"},
     ("otlp", "console"), ("otlp",)),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"},
     (), ("otlp",)),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, (), ()),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "gcp_trace"}, (), ()),
], ids=["nothing set: nothing exported", "an OTLP endpoint: OTLP for both",
        "a traces endpoint: OTLP traces only", "Google Cloud exporters by name",
        "a list of exporters", "none turns one signal off",
        "an unknown exporter is dropped", "OTEL_SDK_DISABLED wins"])
def test_exporters_from_env(environ, traces, metrics):
    assert otel_setup.exporters_from_env(environ) == otel_setup.Exporters(traces, metrics)


_PROBE = ("import sys, main; "
          "from lib.core import telemetry; telemetry.tracing(); "
          "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
          "'opentelemetry.exporter', 'opentelemetry.metrics'))))")


def _loaded_after_import_main(**extra: str) -> list[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "FIRESTORE_", "PUBSUB_"))}
    env.update(AUTH_TOKENINFO_URL="", OPERATIONS_POLICY_FILE=str(REPO / "local/dev-policy.json"),
               **extra)
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_without_an_exporter_neither_the_sdk_nor_an_exporter_is_ever_imported():
    assert _loaded_after_import_main() == []


def test_with_an_endpoint_the_sdk_and_the_otlp_exporters_load_on_first_use():
    loaded = _loaded_after_import_main(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert "opentelemetry.sdk.trace" in loaded
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in loaded
    assert not any(name.startswith("opentelemetry.exporter.cloud") for name in loaded)


def test_import_main_does_not_load_the_sdk_even_with_an_endpoint():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PUBSUB_"))}
    env.update(AUTH_TOKENINFO_URL="", OPERATIONS_POLICY_FILE=str(REPO / "local/dev-policy.json"),
               OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    code = "import sys, main; print(any(m.startswith('opentelemetry.sdk') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False"


def _formatted(message: str) -> dict:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)
    return json.loads(logs.JsonFormatter().format(record))


def test_a_log_line_inside_a_span_carries_its_trace_and_span(monkeypatch):
    monkeypatch.setattr(logs, "_project", ["proj"])
    context = trace.SpanContext(0xABC, 0xDEF, is_remote=False,
                                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    with logs.context(**{"logging.googleapis.com/trace": "projects/proj/traces/from-header"}), \
            trace.use_span(trace.NonRecordingSpan(context)):
        entry = _formatted("inside")
    assert entry["logging.googleapis.com/trace"] == f"projects/proj/traces/{0xABC:032x}"
    assert entry["logging.googleapis.com/spanId"] == f"{0xDEF:016x}"
    assert entry["logging.googleapis.com/trace_sampled"] is True


def test_outside_a_span_the_header_fields_stay(monkeypatch):
    monkeypatch.setattr(logs, "_project", ["proj"])
    fields = logs.trace_fields({"X-Cloud-Trace-Context": "a" * 32 + "/1"}, "proj")
    with logs.context(**fields):
        entry = _formatted("outside")
    assert entry["logging.googleapis.com/trace"] == f"projects/proj/traces/{'a' * 32}"
    assert entry["logging.googleapis.com/spanId"] == format(1, "016x")


@pytest.mark.parametrize(("headers", "trace_id", "span_id", "sampled"), [
    ({"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}, "a" * 32, "b" * 16, True),
    ({"traceparent": f"00-{'a' * 32}-{'b' * 16}-00"}, "a" * 32, "b" * 16, False),
    ({"X-Cloud-Trace-Context": f"{'C' * 32}/17;o=1"}, "c" * 32, format(17, "016x"), True),
    ({"X-Cloud-Trace-Context": f"{'c' * 32}/17;o=0"}, "c" * 32, format(17, "016x"), False),
    ({"traceparent": f"00-{'a' * 32}-{'b' * 16}-01",
      "X-Cloud-Trace-Context": f"{'c' * 32}/17;o=1"}, "a" * 32, "b" * 16, True),
], ids=["a W3C traceparent", "an unsampled traceparent", "an X-Cloud-Trace-Context",
        "an unsampled X-Cloud-Trace-Context", "traceparent wins over X-Cloud-Trace-Context"])
def test_an_incoming_request_continues_its_callers_trace(headers, trace_id, span_id, sampled):
    parent = trace.get_current_span(telemetry._incoming(headers)).get_span_context()
    assert (format(parent.trace_id, "032x"), format(parent.span_id, "016x")) == (
        trace_id, span_id)
    assert parent.trace_flags.sampled is sampled and parent.is_remote


@pytest.mark.parametrize("headers", [
    {}, {"traceparent": "garbage"}, {"X-Cloud-Trace-Context": "not-a-trace"},
    {"X-Cloud-Trace-Context": f"{'0' * 32}/1;o=1"},
], ids=["no header", "a malformed traceparent", "a malformed X-Cloud-Trace-Context",
        "an all-zero trace id"])
def test_without_a_valid_incoming_context_a_new_trace_starts(headers):
    assert telemetry._incoming(headers) is None

"""Settings from the environment, and the JSON log lines Cloud Logging reads."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest

from lib.core import logs
from lib.core.config import ConfigError, Settings


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.project == "demo-local"
    assert settings.max_request_bytes == 64 * 1024
    assert settings.issuers == ()
    assert not settings.trust_forwarded_authorization


@pytest.mark.parametrize(("env", "names"), [
    ({"MAX_REQUEST_BYTES": "lots"}, "MAX_REQUEST_BYTES"),
    ({"AUTH_CLOCK_SKEW_SECONDS": "-1"}, "AUTH_CLOCK_SKEW_SECONDS"),
    ({"TRUST_FORWARDED_AUTHORIZATION": "maybe"}, "TRUST_FORWARDED_AUTHORIZATION"),
    ({"AUTH_ISSUERS": "{not json"}, "AUTH_ISSUERS"),
    ({"AUTH_ISSUERS": '{"https://i": {}}'}, "keys"),
    ({"AUTH_ISSUERS": '{"https://i": {"keys": "/k.json"}}'},
     r"AUTH_ISSUERS\['https://i'\] needs an \"audience\""),
    ({"AUTH_ISSUERS": '{"https://i": {"keys": "/k.json", "audience": " "}}'},
     r"AUTH_ISSUERS\['https://i'\] needs an \"audience\""),
    ({"AUTH_ISSUERS": '{"https://i": {"keys": "/k.json", "audience": ["a"]}}'},
     r"AUTH_ISSUERS\['https://i'\] needs an \"audience\""),
], ids=["a number that is not one", "a negative skew", "a boolean that is not one",
        "issuers that are not JSON", "an issuer without keys", "an issuer without an audience",
        "an issuer with a blank audience", "an issuer with an audience that is not a string"])
def test_a_bad_setting_is_refused_naming_the_variable(env, names):
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


def test_issuers_are_read_from_json():
    settings = Settings.from_env(
        {"AUTH_ISSUERS": '{"https://i": {"keys": "/k.json", "audience": "https://api"}}'})
    assert settings.issuers[0].issuer == "https://i"
    assert settings.issuers[0].keys == "/k.json"
    assert settings.issuers[0].audience == "https://api"


@pytest.mark.parametrize(("headers", "trace", "span"), [
    ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
     "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
    ({"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
     "105445aa7843bc8bf206b12000100000", "0000000000000001"),
], ids=["W3C traceparent", "X-Cloud-Trace-Context"])
def test_the_trace_id_comes_from_either_header(headers, trace, span):
    fields = logs.trace_fields(headers, "proj")
    assert fields["logging.googleapis.com/trace"] == f"projects/proj/traces/{trace}"
    assert fields["logging.googleapis.com/spanId"] == span


def test_no_trace_header_means_no_trace_field():
    assert logs.trace_fields({"traceparent": "garbage"}, "p") == {}


def test_a_log_line_is_one_json_object_with_severity_and_context():
    record = logging.LogRecord("operations.api", logging.WARNING, __file__, 1, "denied %s",
                               ("x",), None)
    record.json_fields = {"permission": "operations.get"}
    with logs.context(operation="operations/o"):
        line = logs.JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["severity"] == "WARNING" and entry["message"] == "denied x"
    assert entry["operation"] == "operations/o" and entry["permission"] == "operations.get"


def test_the_lines_of_every_request_are_the_lines_logger_info_writes():
    logger = logging.getLogger("operations.test-lines")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    fields = {"httpRequest": {"requestMethod": "GET", "status": 200, "latency": "0.000100s"},
              "route": "/v1/{name=operations/**}", "when": datetime(2026, 1, 1, tzinfo=UTC)}
    try:
        with logs.context(operation="operations/o", principal="p@example.com"):
            logger.info("request", extra={"json_fields": fields})
            logs.info(logger, "request", fields)
            logger.setLevel(logging.WARNING)
            logs.info(logger, "request", fields)  # below the level: not written
    finally:
        logger.removeHandler(handler)
    expected, got = (json.loads(line) for line in stream.getvalue().splitlines())
    assert expected.pop("time") <= got.pop("time")
    assert list(got) == list(expected)
    assert got == expected
    assert got["httpRequest"]["status"] == 200 and got["when"] == "2026-01-01 00:00:00+00:00"

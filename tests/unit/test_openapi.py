"""openapi.yaml stays true: valid OpenAPI 3.0, and route for route the default table.

Every route of ``DEFAULT_SURFACES`` is one documented operation (its method and
its ``x-aip127-template``) and every documented operation is a route; each path
routes to its own template, carries its surface's scopes, and the schemas
agree with the protos, the kind registry and the name rules they describe.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from google.rpc import status_pb2
from openapi_spec_validator import validate

from lib import sysparams
from lib.api import _LIST_PARAMS
from lib.kinds import registered
from lib.model import InvalidName, check_name
from lib.routes import DEFAULT_SURFACES, RouteTable

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
with SPEC_PATH.open(encoding="utf-8") as _file:
    SPEC: dict[str, Any] = yaml.safe_load(_file)
TABLE = RouteTable.from_surfaces(DEFAULT_SURFACES)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ERROR_STATUSES = {"400", "401", "403", "404", "409", "413", "501", "503"}


def documented() -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path key, operation) for every operation in the document."""
    return [(method.upper(), path, operation)
            for path, item in SPEC["paths"].items()
            for method, operation in item.items() if method in METHODS]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema(name: str) -> dict[str, Any]:
    return resolve(SPEC["components"]["schemas"][name])


def flat_path(template: str) -> str:
    """The OpenAPI path of an AIP-127 template: one ``{<collection>Id}`` per wildcard."""
    found = re.fullmatch(r"([^{]*)\{\w+=([^}]+)\}(.*)", template)
    if "{" not in template:
        return template  # a literal path (POST /v1/jobs)
    assert found, template
    segments = found[2].split("/")
    flat = [f"{{{segments[i - 1]}Id}}" if segment in ("*", "**") else segment
            for i, segment in enumerate(segments)]
    return found[1] + "/".join(flat) + found[3]


def test_the_document_is_valid_openapi_3_0():
    assert SPEC["openapi"] == "3.0.3"
    validate(SPEC)  # raises with the first problem


@pytest.mark.parametrize("route", TABLE.routes, ids=lambda r: f"{r.method} {r.template}")
def test_every_route_is_documented_once(route):
    matches = [path for method, path, operation in documented()
               if method == route.method and operation.get("x-aip127-template") == route.template]
    assert matches == [flat_path(route.template)]


def test_every_documented_operation_is_a_route():
    routes = {(route.method, route.template) for route in TABLE.routes}
    operations = [(method, operation.get("x-aip127-template"))
                  for method, _, operation in documented()]
    assert len(operations) == len(set(operations))
    assert set(operations) == routes


@pytest.mark.parametrize(("method", "path", "operation"), documented(),
                         ids=[f"{m} {p}" for m, p, _ in documented()])
def test_each_documented_path_routes_to_its_template(method, path, operation):
    concrete = re.sub(r"\{(\w+)Id\}", lambda m: f"{m[1][:1]}-1", path)
    assert "{" not in concrete
    assert TABLE.match(method, concrete).route.template == operation["x-aip127-template"]


@pytest.mark.parametrize(("method", "path", "operation"), documented(),
                         ids=[f"{m} {p}" for m, p, _ in documented()])
def test_each_operation_accepts_any_one_scope_of_its_surface(method, path, operation):
    route = TABLE.match(method, re.sub(r"\{\w+\}", "x", path)).route
    assert operation["security"] == [{"google_oauth2": [scope]} for scope in route.scopes]
    flows = SPEC["components"]["securitySchemes"]["google_oauth2"]["flows"]
    assert all(set(route.scopes) <= set(flow["scopes"]) for flow in flows.values())


SYSTEM_PARAMETERS = {"alt", "fields", "prettyPrint", "$.xgafv", "quotaUser", "$requestReason"}


@pytest.mark.parametrize(("method", "path", "operation"), documented(),
                         ids=[f"{m} {p}" for m, p, _ in documented()])
def test_only_list_takes_query_parameters_of_its_own_and_every_path_the_system_ones(
        method, path, operation):
    action = TABLE.match(method, re.sub(r"\{\w+\}", "x", path)).route.action
    query = {resolve(p)["name"] for p in operation.get("parameters", ())
             if resolve(p)["in"] == "query"}
    assert query == (set(_LIST_PARAMS) if action == "list" else set())
    system = {resolve(p)["name"] for p in SPEC["paths"][path].get("parameters", ())
              if resolve(p)["in"] == "query"}
    assert system == SYSTEM_PARAMETERS
    assert system <= set(sysparams.QUERY_PARAMETERS)  # each one documented is accepted


@pytest.mark.parametrize(("method", "path", "operation"), documented(),
                         ids=[f"{m} {p}" for m, p, _ in documented()])
def test_each_operation_documents_its_success_and_its_errors(method, path, operation):
    action = TABLE.match(method, re.sub(r"\{\w+\}", "x", path)).route.action
    success = {"get": "Operation", "wait": "Operation", "create_job": "Operation",
               "list": "ListOperationsResponse", "cancel": "Empty", "delete": "Empty"}[action]
    responses = operation["responses"]
    ok = resolve(responses["200"])["content"]["application/json"]["schema"]
    assert ok == {"$ref": f"#/components/schemas/{success}"}
    assert {"400", "401", "403", "413", "503"} <= set(responses) <= {"200"} | ERROR_STATUSES
    for status in set(responses) - {"200"}:
        error = resolve(responses[status])["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    assert "WWW-Authenticate" in resolve(responses["401"])["headers"]
    assert "WWW-Authenticate" in resolve(responses["403"])["headers"]


def test_the_error_responses_cover_every_status_the_contract_names():
    responses = SPEC["components"]["responses"]
    statuses = {"400": "BadRequest", "401": "Unauthenticated", "403": "Forbidden",
                "404": "NotFound", "405": "NotAllowed", "409": "Conflict", "413": "TooLarge",
                "501": "NotImplemented", "503": "Unavailable"}
    for name in statuses.values():
        assert responses[name]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}
    assert responses["Unauthenticated"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["NotAllowed"]["headers"]["Allow"]["required"] is True
    inner = schema("Error")["properties"]["error"]
    assert inner["required"] == ["code", "message", "status", "details"]


@pytest.mark.parametrize(("name", "message"), [
    ("Operation", operations_pb2.Operation),
    ("ListOperationsResponse", operations_pb2.ListOperationsResponse),
    ("Status", status_pb2.Status),
], ids=["Operation", "ListOperationsResponse", "Status"])
def test_message_schemas_hold_exactly_the_fields_of_their_proto(name, message):
    fields = {field.json_name for field in message.DESCRIPTOR.fields}
    assert set(schema(name)["properties"]) == fields
    assert schema(name)["additionalProperties"] is False


def test_metadata_documents_the_contracts_fields():
    metadata = schema("OperationMetadata")
    contract = {"createTime", "updateTime", "endTime", "verb", "target", "kind",
                "statusMessage", "progressPercent", "requestedCancellation", "attempt"}
    when_present = {"endTime", "cancelRequestTime", "cancelRequestedBy", "cancelReason",
                    "cancelAcknowledgeTime", "deadline"}
    assert set(metadata["properties"]) == contract | when_present
    assert set(metadata["required"]) == contract - when_present


def test_the_job_schema_is_the_registered_demo_kind():
    # The kinds the product ships (handlers under lib/), not those a test registered.
    shipped = sorted(n for n, k in registered().items() if k.handler.__module__.startswith("lib."))
    assert schema("Job")["properties"]["kind"]["enum"] == shipped
    for kind_name, schema_name in [("demo.countdown", "DemoCountdownParams"),
                                   ("demo.atomic", "DemoAtomicParams")]:
        kind = registered()[kind_name]
        params = schema(schema_name)
        assert set(params["properties"]) == set(kind.params)
        assert set(params["required"]) == {key for key, p in kind.params.items() if p.required}
        for key, param in kind.params.items():
            documented_param = params["properties"][key]
            assert documented_param["type"] == {int: "integer", float: "number",
                                                bool: "boolean"}[param.type]
            assert documented_param.get("minimum") == param.minimum
            assert documented_param.get("maximum") == param.maximum
            assert documented_param.get("default") == param.default


@pytest.mark.parametrize("segment", ["a", "Ab-9_.~", "...", ".a", "..a", "-", "~", ".",
                                     "..", "", "a/b", "a%2Fb", "a:b", "a b", "é"])
def test_the_name_segment_pattern_agrees_with_the_name_rules(segment):
    try:
        valid = check_name(segment).count("/") == 0  # one segment of a valid name
    except InvalidName:
        valid = False
    assert bool(re.search(schema("NameSegment")["pattern"], segment)) == valid


def _server_accepts(text: str) -> bool:
    """What ``OperationsService._wait_timeout`` accepts: a non-negative Duration."""
    duration = duration_pb2.Duration()
    try:
        duration.FromJsonString(text)
    except ValueError:
        return False
    return duration.ToTimedelta().total_seconds() >= 0


@pytest.mark.parametrize(("text", "valid"), [
    ("10s", True), ("2.5s", True), ("0s", True), ("0.000000001s", True),
    ("99999999999s", True), ("-1s", False), ("1", False), ("1.5", False), ("s", False),
    ("1e3s", False), (".5s", False), ("1m", False),
])
def test_the_duration_pattern_agrees_with_the_server(text, valid):
    assert bool(re.search(schema("Duration")["pattern"], text)) == valid
    assert _server_accepts(text) == valid

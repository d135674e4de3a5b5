"""The route table: every documented path reaches its method; nothing else does."""

from __future__ import annotations

import pytest
from google.api_core import exceptions

from lib.config import ConfigError
from lib.routes import CLOUD_PLATFORM, DEFAULT_SURFACES, DIALOGFLOW, RouteTable, compile_template

TABLE = RouteTable.from_surfaces(DEFAULT_SURFACES)
V1_OP = "projects/p/locations/l/operations/o"


@pytest.mark.parametrize(("method", "path", "surface", "action", "name"), [
    ("GET", "/v1/operations/abc", "v1", "get", "operations/abc"),
    ("GET", "/v1/operations/a/b/c", "v1", "get", "operations/a/b/c"),
    ("GET", f"/v1/{V1_OP}", "v1", "get", V1_OP),
    ("DELETE", f"/v1/{V1_OP}", "v1", "delete", V1_OP),
    ("POST", f"/v1/{V1_OP}:cancel", "v1", "cancel", V1_OP),
    ("POST", "/v1/operations/a/b:cancel", "v1", "cancel", "operations/a/b"),
    ("POST", f"/v1/{V1_OP}:wait", "v1", "wait", V1_OP),
    ("GET", "/v1/operations", "v1", "list", "operations"),
    ("GET", "/v1/projects/p/locations/l/operations", "v1", "list", "projects/p/locations/l"),
    ("POST", "/v1/projects/p/locations/l/jobs", "v1", "create_job", "projects/p/locations/l"),
    ("POST", "/v1/jobs", "v1", "create_job", "operations"),
    ("POST", "/v3beta1/projects/p/jobs", "v3beta1", "create_job", "projects/p"),
    ("POST", "/v3beta1/projects/p/locations/l/jobs", "v3beta1", "create_job",
     "projects/p/locations/l"),
    ("GET", "/v3beta1/projects/p/operations/o", "v3beta1", "get", "projects/p/operations/o"),
    ("GET", f"/v3beta1/{V1_OP}", "v3beta1", "get", V1_OP),
    ("POST", "/v3beta1/projects/p/operations/o:cancel", "v3beta1", "cancel",
     "projects/p/operations/o"),
    ("GET", "/v3beta1/projects/p/operations", "v3beta1", "list", "projects/p"),
    ("GET", "/v3beta1/projects/p/locations/l/operations", "v3beta1", "list",
     "projects/p/locations/l"),
    ("GET", "/v1/operations/%41b?pageSize=3", "v1", "get", "operations/Ab"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None)
def test_each_documented_path_reaches_its_method(method, path, surface, action, name):
    found = TABLE.match(method, path)
    assert (found.route.surface, found.route.action, found.name) == (surface, action, name)


def test_each_surface_carries_its_scopes():
    assert TABLE.match("GET", "/v1/operations/x").route.scopes == (CLOUD_PLATFORM,)
    assert TABLE.match("GET", "/v3beta1/projects/p/operations/o").route.scopes == (
        CLOUD_PLATFORM, DIALOGFLOW)


@pytest.mark.parametrize("path", ["/", "/v2/operations/x", "/v1/projects/p/operations/o",
                                  "/v3beta1/operations/x", "/v1/projects/p/locations/l/jobs/x",
                                  "/v1/operations/x:explode"],
                         ids=["the root", "an unknown version", "a v3beta1 shape under v1",
                              "a v1 shape under v3beta1", "a job resource", "an unknown verb"])
def test_unknown_paths_are_not_found(path):
    with pytest.raises(exceptions.NotFound):
        TABLE.match("GET", path)


@pytest.mark.parametrize(("method", "path"), [("PUT", "/v1/operations/x"),
                                              ("GET", "/v1/operations/x:cancel"),
                                              ("POST", "/v1/operations"),
                                              ("GET", "/v1/projects/p/locations/l/jobs")])
def test_a_known_path_with_another_method_is_405(method, path):
    with pytest.raises(exceptions.MethodNotAllowed):
        TABLE.match(method, path)


@pytest.mark.parametrize("path", [
    "/v1/operations/a%2Fb", "/v1/operations/a%2fb", "/v1/operations/..", "/v1/operations/./x",
    "/v1/operations//x", "/v1/operations/", "/v1/operations/" + "a" * 600,
    "/v1/operations/a%20b", "/v1/operations/%ff", "/v1/operations/a%00",
    "/v1/projects/p/locations/l/operations/a%2Fb",
], ids=["an encoded slash", "a lowercase encoded slash", "a dot-dot segment", "a dot segment",
        "an empty segment", "a trailing slash", "an over-long name", "an encoded space",
        "invalid UTF-8", "an encoded NUL", "an encoded slash in a project path"])
def test_bad_names_are_invalid_argument(path):
    with pytest.raises(exceptions.InvalidArgument):
        TABLE.match("GET", path)


def test_a_team_adds_a_surface_by_configuration():
    table = RouteTable.from_surfaces({"v9": {"scopes": ["s"], "routes": [
        {"method": "GET", "template": "/v9/{name=things/*/operations/*}", "action": "get"}]}})
    assert table.match("GET", "/v9/things/t/operations/o").name == "things/t/operations/o"


@pytest.mark.parametrize("surfaces", [
    {"v9": {"scopes": [], "routes": []}},
    {"v9": {"scopes": ["s"], "routes": [{"method": "GET", "template": "/x/{n}", "action": "fly"}]}},
    {"v9": {"scopes": ["s"], "routes": [{"method": "GET", "template": "/x/y", "action": "get"}]}},
], ids=["no scopes", "an unknown action", "a template without a variable"])
def test_a_bad_route_table_is_refused_at_start(surfaces):
    with pytest.raises(ConfigError):
        RouteTable.from_surfaces(surfaces)


def test_templates_compile_star_to_one_segment_and_double_star_to_several():
    one, _ = compile_template("/v1/{name=a/*}")
    many, variable = compile_template("/v1/{name=a/**}")
    assert variable == "name"
    assert one.fullmatch("/v1/a/b") and not one.fullmatch("/v1/a/b/c")
    assert many.fullmatch("/v1/a/b/c")


CREATES = {
    "POST /v1/jobs": ("/v1/jobs", "operations/{id}", "jobs/{id}"),
    "POST /v1/{parent=projects/*/locations/*}/jobs": (
        "/v1/projects/p/locations/l/jobs", "projects/p/locations/l/operations/{id}",
        "projects/p/locations/l/jobs/{id}"),
    "POST /v3beta1/{parent=projects/*}/jobs": (
        "/v3beta1/projects/p/jobs", "projects/p/operations/{id}", "projects/p/jobs/{id}"),
    "POST /v3beta1/{parent=projects/*/locations/*}/jobs": (
        "/v3beta1/projects/p/locations/l/jobs", "projects/p/locations/l/operations/{id}",
        "projects/p/locations/l/jobs/{id}"),
}


@pytest.mark.parametrize(("path", "operation", "target"), CREATES.values(), ids=CREATES.keys())
def test_each_create_route_names_its_operations_in_a_seed_shape_its_surface_serves(
        path, operation, target):
    found = TABLE.match("POST", path)
    assert found.operation_template() == operation
    assert found.target_template() == target
    name = operation.replace("{id}", "abc")
    surface = path.split("/")[1]
    get = TABLE.match("GET", f"/{surface}/{name}")
    assert (get.route.action, get.name) == ("get", name)
    assert get.route.surface == found.route.surface


def _surface(*routes):
    get = {"method": "GET", "template": "/v9/{name=things/*/operations/*}", "action": "get"}
    return {"v9": {"scopes": ["s"], "routes": [get, *routes]}}


def test_a_team_configures_where_its_host_method_puts_operations():
    table = RouteTable.from_surfaces(_surface(
        {"method": "POST", "template": "/v9/{parent=things/*}/jobs", "action": "create_job",
         "operations": "{parent}/operations/{id}"},
        {"method": "POST", "template": "/v9/jobs", "action": "create_job",
         "parent": "things/shared", "operations": "things/shared/operations/{id}"}))
    assert table.match("POST", "/v9/things/t/jobs").operation_template() == (
        "things/t/operations/{id}")
    literal = table.match("POST", "/v9/jobs")
    assert literal.name == "things/shared"
    assert literal.operation_template() == "things/shared/operations/{id}"


BAD_CREATES = {
    "operations no Get route serves": {
        "method": "POST", "template": "/v9/{parent=things/*}/jobs", "action": "create_job",
        "operations": "{parent}/ops/{id}"},
    "no operations template": {
        "method": "POST", "template": "/v9/{parent=things/*}/jobs", "action": "create_job"},
    "an operations template without {id}": {
        "method": "POST", "template": "/v9/{parent=things/*}/jobs", "action": "create_job",
        "operations": "{parent}/operations/fixed"},
    "an unknown placeholder": {
        "method": "POST", "template": "/v9/{parent=things/*}/jobs", "action": "create_job",
        "operations": "{parent}/operations/{id}/{other}"},
    "a literal path without a parent": {
        "method": "POST", "template": "/v9/jobs", "action": "create_job",
        "operations": "things/x/operations/{id}"},
    "a parent next to a variable": {
        "method": "POST", "template": "/v9/{parent=things/*}/jobs", "action": "create_job",
        "parent": "things/x", "operations": "{parent}/operations/{id}"},
    "operations on a get route": {
        "method": "GET", "template": "/v9/{name=others/*}", "action": "get",
        "operations": "{parent}/operations/{id}"},
    "an unknown key": {
        "method": "GET", "template": "/v9/{name=others/*}", "action": "get", "colour": "red"},
    "a bad literal parent": {
        "method": "POST", "template": "/v9/jobs", "action": "create_job",
        "parent": "things//x", "operations": "{parent}/operations/{id}"},
}


@pytest.mark.parametrize("route", BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_a_create_route_that_would_make_unreachable_operations_is_refused_at_start(route):
    with pytest.raises(ConfigError):
        RouteTable.from_surfaces(_surface(route))


def test_the_surfaces_file_can_hold_create_routes(tmp_path):
    import json

    path = tmp_path / "surfaces.json"
    path.write_text(json.dumps(DEFAULT_SURFACES))
    table = RouteTable.from_file(str(path))
    assert table.match("POST", "/v1/jobs").operation_template() == "operations/{id}"

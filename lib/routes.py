"""The route table (data) and AIP-127 path template matching.

A surface is a version prefix with the OAuth scopes it accepts and the
templates of each method. The built-in table serves ``v1`` and ``v3beta1``;
``OPERATIONS_SURFACES_FILE`` may replace it with a JSON file of the same shape,
so a team adds a surface by configuration.

A ``create_job`` route also declares where its operations go: ``operations``
is the name template of each new operation, over ``{parent}`` (the name the
path binds) and ``{id}`` (a fresh random id). A create path without a
variable names its parent literally (``"parent": "operations"``). The parent
is what the policy checks and what List on that parent returns. At load, each
create route must name operations that a Get route of its surface serves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from google.api_core import exceptions

from lib import errors
from lib.config import ConfigError
from lib.model import InvalidName, check_name

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DIALOGFLOW = "https://www.googleapis.com/auth/dialogflow"

# Action -> the permission it needs (README.md, "Security model").
PERMISSIONS = {
    "get": "operations.get",
    "list": "operations.list",
    "wait": "operations.wait",
    "cancel": "operations.cancel",
    "delete": "operations.delete",
    "create_job": "jobs.create",
}

_GET_V1 = ["/v1/{name=operations/**}", "/v1/{name=projects/*/locations/*/operations/*}"]
_GET_V3 = [
    "/v3beta1/{name=projects/*/operations/*}",
    "/v3beta1/{name=projects/*/locations/*/operations/*}",
]


def _methods(get_paths: list[str], list_paths: list[str]) -> list[dict[str, str]]:
    """Get, Delete, Cancel and Wait on each Get path; List on each List path."""
    routes = []
    for path in get_paths:
        routes += [
            {"method": "GET", "template": path, "action": "get"},
            {"method": "DELETE", "template": path, "action": "delete"},
            {"method": "POST", "template": path + ":cancel", "action": "cancel"},
            {"method": "POST", "template": path + ":wait", "action": "wait"},
        ]
    routes += [{"method": "GET", "template": p, "action": "list"} for p in list_paths]
    return routes


def _create(template: str, operations: str, parent: str | None = None) -> dict[str, str]:
    """The example host method ``jobs.create`` on ``template``."""
    route = {"method": "POST", "template": template, "action": "create_job",
             "operations": operations}
    return {**route, "parent": parent} if parent else route


DEFAULT_SURFACES: dict[str, Any] = {
    "v1": {
        "scopes": [CLOUD_PLATFORM],
        "routes": [
            *_methods(_GET_V1, ["/v1/{name=operations}",
                                "/v1/{name=projects/*/locations/*}/operations"]),
            # Access Context Manager's shape: operations/{id}, listed by GET /v1/operations.
            _create("/v1/jobs", "operations/{id}", parent="operations"),
            _create("/v1/{parent=projects/*/locations/*}/jobs", "{parent}/operations/{id}"),
        ],
    },
    "v3beta1": {
        "scopes": [CLOUD_PLATFORM, DIALOGFLOW],
        "routes": [
            *_methods(_GET_V3, ["/v3beta1/{name=projects/*}/operations",
                                "/v3beta1/{name=projects/*/locations/*}/operations"]),
            # Dialogflow CX's shapes: projects/P/operations/{id} and the location one.
            _create("/v3beta1/{parent=projects/*}/jobs", "{parent}/operations/{id}"),
            _create("/v3beta1/{parent=projects/*/locations/*}/jobs", "{parent}/operations/{id}"),
        ],
    },
}
_ROUTE_KEYS = frozenset({"method", "template", "action", "operations", "parent"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Route:
    surface: str
    method: str
    template: str
    action: str
    scopes: tuple[str, ...]
    pattern: re.Pattern[str]
    variable: str | None  # None: a create path without a variable (see ``parent``)
    parent: str | None = None  # the literal parent of a create path without a variable
    operations: str | None = None  # a create route's operation name template

    @property
    def permission(self) -> str:
        return PERMISSIONS[self.action]


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    name: str  # the decoded, checked resource name bound to the template variable

    def operation_template(self) -> str:
        """A create route's operation name, with ``{id}`` still to fill in."""
        return str(self.route.operations).replace("{parent}", self.name)

    def target_template(self) -> str:
        """The job a create route makes (its path after the version), with ``{id}``:
        ``projects/P/locations/L/jobs/{id}``, or ``jobs/{id}`` for ``POST /v1/jobs``."""
        path = _fill(self.route.template, self.name)
        return path.lstrip("/").partition("/")[2] + "/{id}"


_TEMPLATE = re.compile(r"(?P<pre>[^{}]*)\{(?P<var>\w+)(?:=(?P<pat>[^}]+))?\}(?P<post>[^{}]*)")


def compile_template(template: str, literal: bool = False) -> tuple[re.Pattern[str], str | None]:
    """Compiles an AIP-127 template to a regex over the raw (encoded) path.

    ``*`` is one segment, ``**`` one or more; a custom method follows ``:``.
    Segments may be empty here so that a name with an empty segment reaches
    ``check_name`` and gets a 400 rather than an unexplained 404. With
    ``literal``, a template without a variable is a fixed path (variable None).
    """
    if literal and re.fullmatch(r"/[A-Za-z0-9._~/-]+", template):
        return re.compile(re.escape(template)), None
    match = _TEMPLATE.fullmatch(template)
    if not match:
        raise ConfigError(f"route template {template!r} must hold exactly one {{variable}}")
    parts = []
    for segment in (match["pat"] or "*").split("/"):
        if segment == "**":
            parts.append(r"[^/:?]*(?:/[^/:?]*)*")
        elif segment == "*":
            parts.append(r"[^/:?]*")
        elif re.fullmatch(r"[A-Za-z0-9._~-]+", segment):
            parts.append(re.escape(segment))
        else:
            raise ConfigError(f"route template {template!r}: bad segment {segment!r}")
    regex = re.escape(match["pre"]) + "(?P<name>" + "/".join(parts) + ")" + re.escape(match["post"])
    return re.compile(regex), match["var"]


class RouteTable:
    """Finds the route of a request and the resource name in its path."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)

    @classmethod
    def from_surfaces(cls, surfaces: Mapping[str, Any]) -> RouteTable:
        """The table of ``surfaces``; ConfigError naming the first problem."""
        if not isinstance(surfaces, Mapping):
            raise ConfigError("the route table must be a JSON object: surface -> spec")
        routes = []
        for surface, spec in surfaces.items():
            if not isinstance(spec, Mapping):
                raise ConfigError(f"surface {surface!r} must be an object")
            scopes = tuple(spec.get("scopes") or ())
            if not scopes:
                raise ConfigError(f"surface {surface!r} accepts no scopes")
            surface_routes = [_route(surface, scopes, entry) for entry in spec.get("routes", ())]
            for route in surface_routes:
                if route.action == "create_job":
                    _check_operations_served(route, surface_routes)
            routes += surface_routes
        return cls(routes)

    @classmethod
    def from_file(cls, path: str | None) -> RouteTable:
        if not path:
            return cls.from_surfaces(DEFAULT_SURFACES)
        try:
            with open(path, encoding="utf-8") as handle:
                surfaces = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"OPERATIONS_SURFACES_FILE {path}: {exc}") from None
        return cls.from_surfaces(surfaces)

    def match(self, method: str, raw_path: str) -> RouteMatch:
        """The route for ``method`` on ``raw_path`` (still percent-encoded).

        Raises NotFound for an unknown path, MethodNotAllowed (405) for a known
        path with another method, and InvalidArgument for a bad name.
        """
        path = raw_path.split("?", 1)[0]
        allowed = []
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            if route.variable is None:
                return RouteMatch(route, str(route.parent))
            return RouteMatch(route, _decode_name(found["name"]))
        if allowed:
            raise errors.error(exceptions.MethodNotAllowed,
                               f"Method {method} is not supported on this path.",
                               allowed=", ".join(sorted(set(allowed))))
        raise errors.error(exceptions.NotFound, "No such path.", "PATH_NOT_FOUND")


def _route(surface: str, scopes: tuple[str, ...], entry: Any) -> Route:
    """One route entry, checked and compiled."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("template"), str) \
            or not isinstance(entry.get("method"), str):
        raise ConfigError(f"surface {surface!r}: each route needs a method and a template")
    where = f"surface {surface!r}, route {entry['template']!r}"
    unknown = sorted(set(entry) - _ROUTE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}")
    action = entry.get("action")
    if action not in PERMISSIONS:
        raise ConfigError(f"{where}: unknown action {action!r}")
    creates = action == "create_job"
    operations, parent = entry.get("operations"), entry.get("parent")
    if not creates and (operations is not None or parent is not None):
        raise ConfigError(f"{where}: only a create_job route names operations or a parent")
    pattern, variable = compile_template(entry["template"], literal=creates)
    if creates:
        if not isinstance(operations, str):
            raise ConfigError(f"{where}: a create_job route needs \"operations\", the name "
                              "template of its operations (e.g. \"{parent}/operations/{id}\")")
        if (variable is None) != (parent is not None):
            raise ConfigError(f"{where}: a create path names its parent either by a "
                              "variable or by \"parent\", exactly one of the two")
        if parent is not None:
            try:
                check_name(str(parent))
            except InvalidName as exc:
                raise ConfigError(f"{where}: parent {parent!r}: {exc}") from None
        fields = _PLACEHOLDER.findall(operations)
        if sorted(fields) not in (["id"], ["id", "parent"]):
            raise ConfigError(f"{where}: operations {operations!r} must hold {{id}} once and "
                              "may hold {parent} once, nothing else in braces")
    return Route(surface, entry["method"].upper(), entry["template"], action, scopes,
                 pattern, variable, parent, operations)


def _check_operations_served(create: Route, routes: list[Route]) -> None:
    """A create route's operations must be names that a Get route of the same
    surface serves: else every operation it made would answer 404."""
    parent = create.parent if create.variable is None else _sample(create.template)
    name = str(create.operations).replace("{parent}", str(parent)).replace("{id}", "id0")
    for route in routes:
        if route.action != "get":
            continue
        if route.pattern.fullmatch(_fill(route.template, name)):
            return
    raise ConfigError(f"surface {create.surface!r}, route {create.template!r}: its operations "
                      f"(e.g. {name!r}) match no Get route of the surface")


def _sample(template: str) -> str:
    """A name the template's variable matches (``*`` -> one segment)."""
    match = _TEMPLATE.fullmatch(template)
    if match is None:
        return ""
    segments = (match["pat"] or "*").split("/")
    return "/".join("s0" if segment in ("*", "**") else segment for segment in segments)


def _fill(template: str, name: str) -> str:
    """The path of ``template`` with ``name`` bound to its variable."""
    match = _TEMPLATE.fullmatch(template)
    return template if match is None else match["pre"] + name + match["post"]


def _decode_name(raw: str) -> str:
    try:
        segments = [unquote(s, errors="strict") if "%" in s else s for s in raw.split("/")]
    except UnicodeDecodeError:
        raise errors.invalid_argument("A name segment is not valid UTF-8.",
                                      "INVALID_NAME") from None
    if any("/" in segment for segment in segments):
        raise errors.invalid_argument("A name segment may not hold an encoded '/'.",
                                      "INVALID_NAME")
    try:
        return check_name("/".join(segments))
    except InvalidName as exc:
        raise errors.invalid_argument(str(exc), "INVALID_NAME") from None

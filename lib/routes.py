"""The route table (data) and AIP-127 path template matching.

A surface is a version prefix with the OAuth scopes it accepts and the
templates of each method. The built-in table serves ``v1`` and ``v3beta1``;
``OPERATIONS_SURFACES_FILE`` may replace it with a JSON file of the same shape,
so a team adds a surface by configuration.
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


DEFAULT_SURFACES: dict[str, Any] = {
    "v1": {
        "scopes": [CLOUD_PLATFORM],
        "routes": [
            *_methods(_GET_V1, ["/v1/{name=operations}",
                                "/v1/{name=projects/*/locations/*}/operations"]),
            {"method": "POST", "template": "/v1/{parent=projects/*/locations/*}/jobs",
             "action": "create_job"},
        ],
    },
    "v3beta1": {
        "scopes": [CLOUD_PLATFORM, DIALOGFLOW],
        "routes": _methods(
            _GET_V3,
            [
                "/v3beta1/{name=projects/*}/operations",
                "/v3beta1/{name=projects/*/locations/*}/operations",
            ],
        ),
    },
}


@dataclass(frozen=True)
class Route:
    surface: str
    method: str
    template: str
    action: str
    scopes: tuple[str, ...]
    pattern: re.Pattern[str]
    variable: str

    @property
    def permission(self) -> str:
        return PERMISSIONS[self.action]


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    name: str  # the decoded, checked resource name bound to the template variable


def compile_template(template: str) -> tuple[re.Pattern[str], str]:
    """Compiles an AIP-127 template to a regex over the raw (encoded) path.

    ``*`` is one segment, ``**`` one or more; a custom method follows ``:``.
    Segments may be empty here so that a name with an empty segment reaches
    ``check_name`` and gets a 400 rather than an unexplained 404.
    """
    match = re.fullmatch(r"(?P<pre>[^{}]*)\{(?P<var>\w+)(?:=(?P<pat>[^}]+))?\}(?P<post>[^{}]*)",
                         template)
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
        routes = []
        for surface, spec in surfaces.items():
            scopes = tuple(spec.get("scopes") or ())
            if not scopes:
                raise ConfigError(f"surface {surface!r} accepts no scopes")
            for entry in spec.get("routes", ()):
                if entry.get("action") not in PERMISSIONS:
                    raise ConfigError(
                        f"surface {surface!r}: unknown action {entry.get('action')!r}")
                pattern, variable = compile_template(entry["template"])
                routes.append(Route(surface, entry["method"].upper(), entry["template"],
                                    entry["action"], scopes, pattern, variable))
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
            return RouteMatch(route, _decode_name(found["name"]))
        if allowed:
            raise errors.error(exceptions.MethodNotAllowed,
                               f"Method {method} is not supported on this path.",
                               allowed=", ".join(sorted(set(allowed))))
        raise errors.error(exceptions.NotFound, "No such path.", "PATH_NOT_FOUND")


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

"""Operation kinds: a registry of handlers, each with a params schema.

A team adds a kind by registering a handler::

    from lib.kinds import JobContext, Param, register

    @register("acme.export", params={"table": Param(str, required=True)})
    def export(ctx: JobContext, params: dict) -> dict:
        for i, chunk in enumerate(chunks(params["table"])):
            ctx.raise_if_cancelled()
            write(chunk)
            ctx.report_progress(100 * i // total, f"chunk {i}")
        return {"rows": total}

The handler returns the operation's response (a JSON object). Raising a
``google.api_core.exceptions`` class ends the operation with that error code.

A kind whose work cannot be stopped part way (one external call that cannot be
taken back, say) registers with ``cancellable=False``: ``:cancel`` on its
operations answers 501 UNIMPLEMENTED and changes nothing.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from lib import errors
from lib.config import ConfigError


class JobContext(Protocol):
    """What a running handler can see and do."""

    cancelled: threading.Event
    state: Mapping[str, Any]

    @property
    def cancellation(self) -> Any:
        """None until cancelled; then ``cause`` ("request", "deadline" or
        "lease_lost"), ``reason``, ``requested_by`` and ``requested_at``."""

    def shielded(self) -> AbstractContextManager[None]:
        """Holds a cancel until the block exits (a commit that must not be cut
        in half); the grace clock starts at the exit."""

    def raise_if_cancelled(self) -> None:
        """Raises ``google.api_core.exceptions.Cancelled`` once a cancel is requested."""

    def sleep(self, seconds: float) -> None:
        """Waits ``seconds`` on the cancel event; raises Cancelled as soon as it is set."""

    def report_progress(self, percent: int, message: str | None = None) -> None:
        """Records progress (throttled: at most about one write a second)."""

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        """Saves resumable state; a later attempt starts with it as ``state``."""

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Registers cleanup to run once, before the operation ends cancelled."""


Handler = Callable[[JobContext, dict[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Param:
    """One parameter of a kind: its JSON type, bounds and default."""

    type: type
    required: bool = False
    default: Any = None
    minimum: int | float | None = None
    maximum: int | float | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    handler: Handler
    params: Mapping[str, Param] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], str | None] | None = None
    cancellable: bool = True
    cancel_grace_seconds: float | None = None  # None: CANCEL_GRACE_SECONDS

    def validate(self, params: Any) -> dict[str, Any]:
        """Params with defaults applied; InvalidArgument naming the first problem."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise _bad("params must be a JSON object.")
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise _bad(f"Unknown param {unknown[0]!r} for kind {self.name!r}.")
        valid: dict[str, Any] = {}
        for key, spec in self.params.items():
            if key not in params or params[key] is None:
                if spec.required:
                    raise _bad(f"Param {key!r} is required for kind {self.name!r}.")
                if spec.default is not None:
                    valid[key] = spec.default
                continue
            valid[key] = _coerce(key, params[key], spec)
        problem = self.check(valid) if self.check else None
        if problem:
            raise _bad(problem)
        return valid


def _coerce(key: str, value: Any, spec: Param) -> int | float | str | bool:
    if isinstance(value, bool) != (spec.type is bool):
        raise _bad(f"Param {key!r} must be a {spec.type.__name__}.")
    if spec.type is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 5.0 is the integer 5
    if spec.type is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, spec.type) or (isinstance(value, float) and not math.isfinite(value)):
        raise _bad(f"Param {key!r} must be a {spec.type.__name__}.")
    if isinstance(value, int | float):
        if spec.minimum is not None and value < spec.minimum:
            raise _bad(f"Param {key!r} must be at least {spec.minimum:g}.")
        if spec.maximum is not None and value > spec.maximum:
            raise _bad(f"Param {key!r} must be at most {spec.maximum:g}.")
        return value
    if isinstance(value, str):
        return value
    raise _bad(f"Param {key!r} has an unsupported type.")


def _bad(message: str) -> Exception:
    return errors.invalid_argument(message, "INVALID_PARAMS")


_REGISTRY: dict[str, Kind] = {}


def register(name: str, params: Mapping[str, Param] | None = None,
             check: Callable[[dict[str, Any]], str | None] | None = None, *,
             cancellable: bool = True, cancel_grace_seconds: float | None = None
             ) -> Callable[[Handler], Handler]:
    """Registers the decorated function as the handler of kind ``name``.

    Args:
        name: the kind, as a create request names it.
        params: the params it takes, by name; anything else is refused with 400.
        check: a rule across params; returns the problem, or None.
        cancellable: False when its operations may not be cancelled (work that
            must never be cut short): their ``:cancel`` answers 501
            UNIMPLEMENTED and changes nothing.
        cancel_grace_seconds: how long the handler may run on after it saw its
            cancel before the worker ends the operation without it (default
            CANCEL_GRACE_SECONDS).
    """

    def decorate(handler: Handler) -> Handler:
        if name in _REGISTRY:
            raise ValueError(f"kind {name!r} is registered twice")
        _REGISTRY[name] = Kind(name, handler, dict(params or {}), check, cancellable,
                               cancel_grace_seconds)
        return handler

    return decorate


def get_kind(name: Any) -> Kind:
    """The registered kind, or InvalidArgument for anything else."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise errors.invalid_argument(
            f"Unknown kind; known kinds: {', '.join(sorted(_REGISTRY))}.", "UNKNOWN_KIND")
    return _REGISTRY[name]


def registered() -> dict[str, Kind]:
    return dict(_REGISTRY)


def load_kinds(modules: Iterable[str]) -> None:
    """Imports the modules that register a deployment's own kinds
    (OPERATIONS_KIND_MODULES); a module that cannot be imported stops the
    start-up with its name."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"OPERATIONS_KIND_MODULES: cannot import {module!r}: {exc}") from None


def is_cancellable(name: str) -> bool:
    """Whether operations of kind ``name`` may be cancelled (a kind this
    process does not know may be: its worker decides)."""
    kind = _REGISTRY.get(name)
    return kind is None or kind.cancellable


from lib.kinds import demo as demo  # noqa: E402  (registers the built-in demo kinds)

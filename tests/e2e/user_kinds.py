"""A kind registered the way the README's "Writing your own kind" shows,
loaded into the e2e stack with OPERATIONS_KIND_MODULES: it returns what
ordinary Python returns by accident, none of which a response may hold."""

from __future__ import annotations

from datetime import UTC, datetime

from lib.kinds import JobContext, Param, register


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


UNSTORABLE = {
    "a datetime": lambda: {"when": datetime.now(UTC)},
    "an empty key": lambda: {"": 1},
    "nan": lambda: {"x": float("nan")},
    "bytes": lambda: {"b": b"\x00\xff"},
    "a 2,000,000-character string": lambda: {"s": "x" * 2_000_000},
    "a list nested 40 deep": lambda: {"deep": _nested(40)},
}


@register("user.accidental", params={"returns": Param(str, required=True)})
def accidental(ctx: JobContext, params: dict) -> dict:
    return UNSTORABLE[params["returns"]]()

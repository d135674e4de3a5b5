"""ListOperations filters: the AIP-160 subset (pages are ``lib.core.pagination``).
No I/O: the store pushes ``Filter.equalities()`` and
``Filter.create_time_bounds()`` into its query and re-checks ``Filter.matches``.

Filter grammar (AIP-160; OR binds tighter than AND, so ``a AND b OR c`` is
``a AND (b OR c)``)::

    filter      = [expression]
    expression  = factor {"AND" factor}
    factor      = term {"OR" term}
    term        = ["NOT" | "-"] simple
    simple      = restriction | "(" expression ")"
    restriction = FIELD COMPARATOR value

Juxtaposed terms (AIP-160's fuzzy "sequence"), the has operator ``:``,
functions and wildcards are not supported: they are a 400, never a guess.
An operation without an error compares as ``error.code = 0`` and a missing
string field as ``""`` (proto3 defaults), so ``!=`` is always the exact
negation of ``=``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NoReturn

from lib.core import errors

MAX_FILTER_LENGTH = 2000
MAX_FILTER_DEPTH = 32  # parentheses

Value = bool | int | str | datetime
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_BOOL, _INT, _STRING, _TIMESTAMP = "a boolean", "an integer", "a string", "a timestamp"
_EQUALITY = frozenset({"=", "!="})
_ORDERED = frozenset({"=", "!=", "<", "<=", ">", ">="})
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True)
class _Field:
    path: str  # the Firestore field path in the stored record
    type: str
    operators: frozenset[str]


# Strings and booleans have no order here: AIP-160 leaves it to the service.
_FIELDS = {
    "done": _Field("done", _BOOL, _EQUALITY),
    "error.code": _Field("error.code", _INT, _ORDERED),
    "metadata.kind": _Field("kind", _STRING, _EQUALITY),
    "metadata.verb": _Field("verb", _STRING, _EQUALITY),
    "metadata.target": _Field("target", _STRING, _EQUALITY),
    "metadata.createTime": _Field("createTime", _TIMESTAMP, _ORDERED),
}

_WS = re.compile(r"[ \t\r\n]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_.]")
_COMPARATOR = re.compile(r"<=|>=|!=|=|<|>|:")
_BARE = re.compile(r"[^ \t\r\n()\"']+")
_BARE_STRING = re.compile(r"[A-Za-z0-9_.~/-]+")
_INTEGER = re.compile(r"-?[0-9]{1,10}")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_KEYWORDS = frozenset({"AND", "OR", "NOT"})


@dataclass(frozen=True)
class Restriction:
    field: str  # the public name, e.g. "metadata.kind"
    op: str
    value: Value


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Restriction | Not | And | Or


@dataclass(frozen=True)
class Filter:
    """A parsed filter; ``root`` None matches everything."""

    root: Node | None = None

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether a stored operation record satisfies the filter."""
        return self.root is None or _evaluate(self.root, record)

    def equalities(self) -> dict[str, Any]:
        """Firestore field path -> value for the top-level AND-ed equalities.

        Every listed document must satisfy these, so ``where(path, "==", value)``
        is safe. Left out: values a document may hold by absence rather than by
        a stored field (``error.code = 0``, ``""``), which Firestore would miss.
        """
        pushed: dict[str, Any] = {}
        for node in self._conjuncts():
            if not isinstance(node, Restriction) or node.op != "=":
                continue
            field = _FIELDS[node.field]
            if field.type == _TIMESTAMP or (field.type != _BOOL and node.value in (0, "")):
                continue
            pushed.setdefault(field.path, node.value)
        return pushed

    def create_time_bounds(self) -> list[tuple[str, datetime]]:
        """Top-level AND-ed ``createTime`` comparisons as Firestore (op, value) pairs."""
        return [
            ("==" if node.op == "=" else node.op, node.value)
            for node in self._conjuncts()
            if isinstance(node, Restriction) and node.field == "metadata.createTime"
            and node.op != "!=" and isinstance(node.value, datetime)
        ]

    @property
    def canonical(self) -> str:
        """An unambiguous text of the filter that parses back to the same filter."""
        return "" if self.root is None else _render(self.root)

    def _conjuncts(self) -> tuple[Node, ...]:
        if self.root is None:
            return ()
        return self.root.operands if isinstance(self.root, And) else (self.root,)


def parse_filter(text: str) -> Filter:
    """Parses an AIP-160 filter; raises InvalidArgument (INVALID_FILTER) with
    the 0-based character position of the problem."""
    if len(text) > MAX_FILTER_LENGTH:
        _fail(MAX_FILTER_LENGTH, f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    control = _CONTROL.search(text)
    if control:
        _fail(control.start(), "control characters are not allowed")
    if not text.strip(" \t\r\n"):
        return Filter()
    return Filter(_Parser(text).parse())


def normalize_filter(text: str) -> str:
    """The canonical text of a filter (what page tokens are bound to)."""
    return parse_filter(text).canonical


def _fail(position: int, what: str) -> NoReturn:
    raise errors.invalid_argument(
        f"Invalid filter at position {position}: {what}.", "INVALID_FILTER",
        position=str(position),
    )


class _Parser:
    """Recursive descent over the text; recursion is bounded by MAX_FILTER_DEPTH."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def parse(self) -> Node:
        node = self.expression()
        self.skip()
        if self.pos < len(self.text):
            if self.text[self.pos] == ")":
                _fail(self.pos, "')' without a matching '('")
            _fail(self.pos, f"expected AND, OR or the end of the filter, found {self.found()}")
        return node

    def skip(self) -> None:
        match = _WS.match(self.text, self.pos)
        if match:
            self.pos = match.end()

    def found(self) -> str:
        if self.pos >= len(self.text):
            return "the end of the filter"
        bare = _BARE.match(self.text, self.pos)
        return repr(bare.group()[:20] if bare else self.text[self.pos])

    def keyword(self, word: str) -> bool:
        self.skip()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and not _WORD_CHAR.match(self.text, end):
            self.pos = end
            return True
        return False

    def expression(self) -> Node:
        parts = [self.factor()]
        while self.keyword("AND"):
            parts.append(self.factor())
        return _combine(And, parts)

    def factor(self) -> Node:
        parts = [self.term()]
        while self.keyword("OR"):
            parts.append(self.term())
        return _combine(Or, parts)

    def term(self) -> Node:
        if self.keyword("NOT"):
            return Not(self.simple())
        if self.text.startswith("-", self.pos):
            self.pos += 1
            return Not(self.simple())
        return self.simple()

    def simple(self) -> Node:
        self.skip()
        if not self.text.startswith("(", self.pos):
            return self.restriction()
        opened = self.pos
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            _fail(opened, f"parentheses are nested deeper than {MAX_FILTER_DEPTH}")
        self.pos += 1
        node = self.expression()
        self.skip()
        if not self.text.startswith(")", self.pos):
            _fail(self.pos, f"expected ')' to close the '(' at position {opened}, "
                            f"found {self.found()}")
        self.pos += 1
        self.depth -= 1
        return node

    def restriction(self) -> Restriction:
        start = self.pos
        match = _NAME.match(self.text, self.pos)
        if not match or match.group() in _KEYWORDS:
            _fail(start, f"expected a field name or '(', found {self.found()}")
        name = match.group()
        field = _FIELDS.get(name)
        if field is None:
            _fail(start, f"unknown field {name!r} (filterable: {', '.join(_FIELDS)})")
        self.pos = match.end()
        self.skip()
        match = _COMPARATOR.match(self.text, self.pos)
        if not match:
            _fail(self.pos, f"expected a comparison operator after {name}, found {self.found()}")
        op = match.group()
        if op not in field.operators:
            _fail(self.pos, f"operator {op!r} is not supported on {name} ({field.type})")
        self.pos = match.end()
        self.skip()
        return Restriction(name, op, self.value(name, field))

    def value(self, name: str, field: _Field) -> Value:
        start = self.pos
        quoted = self.text.startswith(('"', "'"), start)
        if quoted:
            raw = self.string()
        else:
            bare = _BARE.match(self.text, start)
            if not bare:
                _fail(start, f"expected a value for {name}, found {self.found()}")
            raw = bare.group()
            self.pos = bare.end()
        source = self.text[start:self.pos]
        if field.type == _BOOL and not quoted and raw in ("true", "false"):
            return raw == "true"
        if (field.type == _INT and not quoted and _INTEGER.fullmatch(raw)
                and -(2**31) <= int(raw) < 2**31):
            return int(raw)
        if field.type == _STRING:
            if "*" in raw:
                _fail(start, "wildcards ('*') are not supported")
            if quoted or (_BARE_STRING.fullmatch(raw) and raw not in _KEYWORDS):
                return raw
            _fail(start, f"{source[:20]!r} must be quoted to be a string value for {name}")
        if field.type == _TIMESTAMP:
            stamp = _timestamp(raw)
            if stamp is not None:
                return stamp
            _fail(start, f"expected an RFC 3339 timestamp such as \"2026-01-01T00:00:00Z\" "
                         f"for {name}, found {source[:40]!r}")
        expected = {_BOOL: "true or false", _INT: "a 32-bit integer"}[field.type]
        _fail(start, f"expected {expected} for {name}, found {source[:20]!r}")

    def string(self) -> str:
        """A quoted string with backslash escapes; the cursor is on the quote."""
        start, quote = self.pos, self.text[self.pos]
        chars: list[str] = []
        i = start + 1
        while i < len(self.text):
            char = self.text[i]
            if char == quote:
                self.pos = i + 1
                return "".join(chars)
            if char == "\\":
                escaped = _ESCAPES.get(self.text[i + 1: i + 2])
                if escaped is None:
                    _fail(i, "unknown escape sequence in a string (use \\\", \\', \\\\, "
                             "\\n, \\t or \\r)")
                chars.append(escaped)
                i += 2
            else:
                chars.append(char)
                i += 1
        _fail(start, "unterminated string")


def _combine(kind: type[And] | type[Or], parts: list[Node]) -> Node:
    if len(parts) == 1:
        return parts[0]
    flat: list[Node] = []
    for part in parts:  # (a AND b) AND c is a AND b AND c
        flat.extend(part.operands if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


def _timestamp(text: str) -> datetime | None:
    """Strict RFC 3339, in UTC; nanoseconds are truncated to microseconds."""
    match = _RFC3339.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        if int(off_m or 0) > 59:
            return None
        zone = timezone(-offset if sign == "-" else offset)
        micros = int((fraction or "").ljust(6, "0")[:6])
        stamp = datetime(int(year), int(month), int(day), int(hour), int(minute),
                         int(second), micros, tzinfo=zone)
        return stamp.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _evaluate(node: Node, record: Mapping[str, Any]) -> bool:
    if isinstance(node, Restriction):
        return _OPERATORS[node.op](_record_value(node.field, record), node.value)
    if isinstance(node, Not):
        return not _evaluate(node.operand, record)
    if isinstance(node, And):
        return all(_evaluate(operand, record) for operand in node.operands)
    return any(_evaluate(operand, record) for operand in node.operands)


def _record_value(name: str, record: Mapping[str, Any]) -> Value:
    """A record's value for a filter field; an absent one is its proto3 default."""
    field = _FIELDS[name]
    if field.type == _BOOL:
        return bool(record.get("done"))
    if field.type == _INT:
        error = record.get("error")
        code = error.get("code") if isinstance(error, Mapping) else None
        return code if isinstance(code, int) and not isinstance(code, bool) else 0
    value = record.get(field.path)
    if field.type == _STRING:
        return value if isinstance(value, str) else ""
    if not isinstance(value, datetime):
        return _EPOCH
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _render(node: Node) -> str:
    if isinstance(node, Restriction):
        return f"{node.field} {node.op} {_literal(node.value)}"
    if isinstance(node, Not):
        inner = _render(node.operand)
        return f"NOT {inner}" if isinstance(node.operand, Restriction) else f"NOT ({inner})"
    if isinstance(node, And):  # OR binds tighter: no parentheses needed
        return " AND ".join(_render(operand) for operand in node.operands)
    return " OR ".join(f"({_render(operand)})" if isinstance(operand, And) else _render(operand)
                       for operand in node.operands)


def _literal(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return f'"{naive.isoformat(timespec="microseconds")}Z"'
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\t", "\\t").replace("\r", "\\r"))
    return f'"{escaped}"'

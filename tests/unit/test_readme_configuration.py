"""README.md's Configuration table lists exactly the variables lib/core/config.py reads."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from lib.core import config
from lib.core.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
_NAME = re.compile(r"[A-Z][A-Z0-9_]{2,}")


def docstring_variables() -> set[str]:
    """The variables the module docstring lists (one per line, indented)."""
    doc = config.__doc__ or ""
    return {match.group(1) for match in re.finditer(r"^ {4}([A-Z][A-Z0-9_]+)\s", doc, re.M)}


def from_env_variables() -> set[str]:
    """The variables ``Settings.from_env`` reads: ``env.get("X"...)`` and
    ``_int(env, "X", ...)`` (and the other typed readers)."""
    source = inspect.getsource(Settings.from_env)
    names = set(re.findall(r'(?:env\.get\(|\(\s*env,\s*)"([A-Z][A-Z0-9_]+)"', source))
    assert len(names) > 20, "from_env reads its variables in a way this test does not see"
    return names


def readme_table_variables() -> set[str]:
    """The backticked names in the first column of README's Configuration table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "README's Configuration section has no table"
    names: set[str] = set()
    for row in rows:
        first_cell = row.split("|")[1]
        names.update(n for n in re.findall(r"`([^`]+)`", first_cell) if _NAME.fullmatch(n))
    return names


def test_the_config_docstring_lists_what_from_env_reads():
    assert docstring_variables() == from_env_variables()


def test_the_readme_configuration_table_lists_every_variable_config_reads():
    listed, read = readme_table_variables(), from_env_variables()
    assert not read - listed, f"add to README's Configuration table: {sorted(read - listed)}"
    assert not listed - read, f"README lists what config does not read: {sorted(listed - read)}"

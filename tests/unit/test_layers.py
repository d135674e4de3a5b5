"""lib/ is grouped by layer, and imports flow one way: the HTTP edge and the
job runtime build on the operations core (with the kinds registry, its
extension point); the core knows neither; local tools may use anything and
nothing deployed uses them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "lib"
MAY_IMPORT = {
    "core": {"core", "kinds"},
    "kinds": {"core", "kinds"},
    "edge": {"core", "kinds", "edge"},
    "jobs": {"core", "kinds", "jobs"},
    "tools": {"core", "kinds", "edge", "jobs", "tools"},
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "lib" else None


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = sorted(p for p in LIB.rglob("*.py") if p.parent != LIB)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(LIB)) for p in MODULES])
def test_a_module_imports_only_from_the_layers_below_it(path):
    layer = path.relative_to(LIB).parts[0]
    wrong = {name for name in imports(path)
             if layer_of(name) in MAY_IMPORT and layer_of(name) not in MAY_IMPORT[layer]}
    assert not wrong, f"lib/{layer} may not import {sorted(wrong)}"


def test_every_module_sits_in_a_layer():
    loose = sorted(p.name for p in LIB.glob("*.py"))
    # __init__ and the two entry points the docs give (python -m lib.devtoken / lib.cli)
    assert loose == ["__init__.py", "cli.py", "devtoken.py"]
    assert {p.name for p in LIB.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        MAY_IMPORT)

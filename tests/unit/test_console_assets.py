"""The console's static files: which paths are the console's, hashed names, rewritten references."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lib.edge import console


@pytest.mark.parametrize(("path", "expected"), [
    ("/console", True),
    ("/console/assets/app.0123456789ab.js", True),
    ("/console/", True),
    ("/consoles", False),
    ("/v1/console", False),
    ("/v1/operations", False),
], ids=lambda value: str(value))
def test_which_paths_belong_to_the_console(path: str, expected: bool) -> None:
    assert console.is_console_path(path) is expected


def _site(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


PAGE = ('<link href="console/assets/site.css"><script type="module" '
        'src="console/assets/main.js"></script>')


def test_the_page_names_assets_by_content_hash_and_modules_import_by_hash(
        tmp_path: Path) -> None:
    site = _site(tmp_path, {"index.html": PAGE, "site.css": "body{}",
                            "main.js": 'import { f } from "./util.js";\nf();',
                            "util.js": "export function f() {}"})
    bundle = console.build_bundle(site)
    page = bundle.page.body.decode()
    names = re.findall(r"console/assets/([^\"]+)", page)
    assert [re.sub(r"\.[0-9a-f]{12}\.", ".", n) for n in names] == ["site.css", "main.js"]
    assert set(names) <= set(bundle.assets)
    main = bundle.assets[names[1]].body.decode()
    util = re.search(r'from "\./(util\.[0-9a-f]{12}\.js)"', main)
    assert util is not None and util[1] in bundle.assets
    assert bundle.assets[names[1]].content_type.startswith("text/javascript")


def test_a_change_in_an_imported_module_renames_its_importer(tmp_path: Path) -> None:
    files = {"index.html": PAGE, "site.css": "", "main.js": 'import "./util.js";',
             "util.js": "export const a = 1;"}
    before = set(console.build_bundle(_site(tmp_path, files)).assets)
    after = set(console.build_bundle(_site(tmp_path, {**files, "util.js": "export const a = 2;"}))
                .assets)
    changed = {re.sub(r"\.[0-9a-f]{12}\.", ".", n) for n in before ^ after}
    assert changed == {"main.js", "util.js"}  # site.css keeps its name (and its cache)


@pytest.mark.parametrize("files", [
    {"index.html": PAGE, "site.css": "", "main.js": 'import "./gone.js";'},
    {"index.html": PAGE, "main.js": ""},
    {"index.html": PAGE, "site.css": "", "main.js": 'import "./b.js";',
     "b.js": 'import "./main.js";'},
], ids=["a module imports a missing file", "the page names a missing file",
        "modules import each other in a cycle"])
def test_a_broken_site_is_refused_with_a_reason(tmp_path: Path, files: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="console:"):
        console.build_bundle(_site(tmp_path, files))


def test_the_shipped_console_builds_and_weighs_under_100_kb() -> None:
    bundle = console.build_bundle()
    assert bundle.page.body.startswith(b"<!doctype html>")
    served = [bundle.page, *bundle.assets.values()]
    assert sum(len(f.gzipped or f.body) for f in served) < 100 * 1024


def test_nothing_is_read_until_the_first_request(tmp_path: Path) -> None:
    site = console.Console(tmp_path / "not-there-yet")  # constructing reads nothing
    with pytest.raises(FileNotFoundError):
        site.bundle()
    _site(tmp_path, {"index.html": "<p>hi</p>"})
    assert console.Console(tmp_path).bundle().page.body == b"<p>hi</p>"


def test_a_bundle_without_its_files_answers_a_generic_500_with_the_headers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import flask

    app = flask.Flask(__name__)
    with app.test_request_context("/console"):
        response = console.Console(tmp_path / "missing").respond(flask.request, "/console")
    assert response.status_code == 500
    assert response.get_json()["error"]["message"] == "Internal error."
    assert response.headers["Content-Security-Policy"] == console.CONTENT_SECURITY_POLICY
    assert "missing" not in response.get_data(as_text=True)
    assert "cannot be served" in caplog.text

"""Build the Cloud Functions source bundle and check that it imports (``make package``).

1. Zips the files that ``terraform/bundle.json`` lists (the list Terraform
   uploads, see ``terraform/main.tf``) into ``build/operations-source.zip``.
2. Creates a fresh virtualenv in a temporary directory and installs the
   bundle's ``requirements.txt`` into it, as the Cloud Functions build does.
3. Imports ``main`` from the unpacked bundle with a bare environment (no
   emulator hosts, no settings) and with sockets disabled, and checks the
   entry points Terraform deploys: Cloud Functions imports ``main`` when an
   instance starts, and nothing may reach the network at import time. Then
   builds the web console's files from the unpacked bundle (``/console``), so
   a page that names a file the bundle lacks fails here, not in production.

Prints how long each step took; on any failure prints why and exits 1.

Usage: scripts/package.py [--output ZIP] [--python EXE] [--policy JSON]
                          [--surfaces JSON] [--zip-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = REPO_ROOT / "terraform" / "bundle.json"
DEFAULT_OUTPUT = REPO_ROOT / "build" / "operations-source.zip"
# The entry points terraform/functions.tf deploys (tests/terraform checks both lists agree).
ENTRY_POINTS = ("operations_http", "operations_worker", "operations_sweep")
# Files the bundle cannot do without: the functions' code and the console's page.
REQUIRED_FILES = ("main.py", "requirements.txt", "lib/edge/console/static/index.html")
# The HTTP function's bundle adds these next to main.py (terraform/main.tf,
# data.archive_file.http) and names them in these variables.
CONFIG_FILES = {
    "policy": ("policy.json", "OPERATIONS_POLICY_FILE"),
    "surfaces": ("surfaces.json", "OPERATIONS_SURFACES_FILE"),
}

# Runs inside the fresh virtualenv, in the unpacked bundle.
_IMPORT_CHECK = """
import json, socket, sys

class NetworkAtImport(RuntimeError):
    pass

def _refuse(*args, **kwargs):
    raise NetworkAtImport("main tried to reach the network at import time")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
sys.path.insert(0, "")
import main
missing = [name for name in sys.argv[1:] if not callable(getattr(main, name, None))]
print(json.dumps({"missing": missing}))
"""
# Runs there too: the console's page and every file it names, as GET /console serves them.
_CONSOLE_CHECK = """
import sys
sys.path.insert(0, "")
from lib.edge import console
print(len(console.build_bundle().assets))
"""


class PackageError(Exception):
    """A step failed; the message says which and why."""


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The regex of one bundle.json pattern, with Terraform ``fileset`` semantics.

    ``**/`` is any number of directories (none included), a trailing ``**``
    anything below, ``*`` and ``?`` stay within one path segment. Character
    classes and alternatives are refused so both readers agree exactly.
    """
    if any(c in pattern for c in "[]{}\\") or pattern.startswith("/"):
        raise PackageError(f"bundle.json: unsupported pattern {pattern!r} (use *, ** and ?)")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _glob(root: Path, pattern: str) -> set[str]:
    """Files under ``root`` matching ``pattern`` (POSIX paths relative to root)."""
    regex = pattern_regex(pattern)
    segments = pattern.split("/")
    literal = []
    for segment in segments[:-1]:
        if any(c in segment for c in "*?"):
            break
        literal.append(segment)
    base = root.joinpath(*literal)
    if not any(c in pattern for c in "*?"):
        return {pattern} if (root / pattern).is_file() else set()
    found = set()
    for directory, _, files in os.walk(base):
        for file in files:
            relative = (Path(directory) / file).relative_to(root).as_posix()
            if regex.fullmatch(relative):
                found.add(relative)
    return found


def read_manifest(path: Path = MANIFEST) -> tuple[list[str], list[str]]:
    """The include and exclude patterns of bundle.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        include, exclude = data["include"], data["exclude"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackageError(f"cannot read {path}: {exc}") from None
    if not all(isinstance(p, str) for p in [*include, *exclude]):
        raise PackageError(f"{path}: include and exclude must be lists of strings")
    return include, exclude


def bundle_files(root: Path = REPO_ROOT, manifest: Path = MANIFEST) -> list[str]:
    """The bundle's files, sorted: what terraform/main.tf's ``local.bundle_files`` holds."""
    include, exclude = read_manifest(manifest)
    chosen: set[str] = set()
    for pattern in include:
        chosen |= _glob(root, pattern)
    for pattern in exclude:
        chosen -= _glob(root, pattern)
    return sorted(chosen)


def write_zip(output: Path, files: Sequence[str], extra: dict[str, bytes]) -> str:
    """Writes a reproducible zip (sorted, fixed timestamps and modes); returns its sha256."""
    output.parent.mkdir(parents=True, exist_ok=True)
    entries = {name: (REPO_ROOT / name).read_bytes() for name in files}
    entries.update(extra)
    tmp = output.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name])
    tmp.replace(output)
    return hashlib.sha256(output.read_bytes()).hexdigest()


@contextmanager
def step(title: str) -> Iterator[None]:
    print(f"package: {title} ...", flush=True)
    start = time.perf_counter()
    try:
        yield
    except PackageError as exc:
        raise PackageError(f"{title}: {exc}") from None
    print(f"package: {title}: done in {time.perf_counter() - start:.1f} s", flush=True)


def _run(command: Sequence[str], *, cwd: Path, env: dict[str, str], what: str) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise PackageError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def _bare_environment(home: Path) -> dict[str, str]:
    """What the check runs with: no emulator hosts, credentials or settings."""
    return {
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PATH": os.defpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }


def _install_environment() -> dict[str, str]:
    """pip keeps the caller's index, proxy and cache settings, not its Python paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def package(args: argparse.Namespace) -> None:
    total = time.perf_counter()
    extra: dict[str, bytes] = {}
    for key, (filename, _) in CONFIG_FILES.items():
        path = getattr(args, key)
        if path is not None:
            try:
                extra[filename] = Path(path).read_bytes()
            except OSError as exc:
                raise PackageError(f"--{key} {path}: {exc.strerror}") from None

    with step("bundle"):
        files = bundle_files()
        for required in REQUIRED_FILES:
            if required not in files:
                raise PackageError(f"{required} is not in the bundle (terraform/bundle.json)")
        digest = write_zip(args.output, files, extra)
        size = args.output.stat().st_size
        print(f"package: {args.output} ({len(files) + len(extra)} files, "
              f"{size / 1024:.1f} KiB, sha256 {digest[:16]}...)")
    if args.zip_only:
        return

    with tempfile.TemporaryDirectory(prefix="operations-package-") as tmp:
        work = Path(tmp)
        source, env_dir, home = work / "workspace", work / "venv", work / "home"
        home.mkdir()
        with zipfile.ZipFile(args.output) as archive:
            archive.extractall(source)
        python = env_dir / "bin" / "python"
        env = _bare_environment(home)

        with step(f"virtualenv ({args.python})"):
            _run([args.python, "-m", "venv", str(env_dir)], cwd=work, env=env,
                 what=f"{args.python} -m venv")
            version = _run([str(python), "-c", "import sys; print(sys.version.split()[0])"],
                           cwd=work, env=env, what="python --version").strip()
            print(f"package: Python {version} (Cloud Functions runs var.runtime, "
                  f"python311 by default)")

        with step("install requirements.txt (from PyPI; may take a minute)"):
            _run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                  "--no-input", "--quiet", "-r", "requirements.txt"],
                 cwd=source, env=_install_environment(), what="pip install -r requirements.txt")

        with step("import main (no settings, no emulators, no network)"):
            for filename, variable in CONFIG_FILES.values():
                if filename in extra:
                    env[variable] = str(source / filename)
            out = _run([str(python), "-c", _IMPORT_CHECK, *ENTRY_POINTS], cwd=source, env=env,
                       what="import main")
            missing = json.loads(out.strip().splitlines()[-1])["missing"]
            if missing:
                raise PackageError(f"main.py does not define {', '.join(missing)}, "
                                   f"which terraform/functions.tf deploys")
            assets = _run([str(python), "-c", _CONSOLE_CHECK], cwd=source, env=env,
                          what="the console's files").strip().splitlines()[-1]
            print(f"package: the console's page and its {assets} assets are in the bundle")
    print(f"package: OK in {time.perf_counter() - total:.1f} s: {args.output}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="zip to write (default: build/operations-source.zip)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the check's virtualenv, e.g. python3.12 "
                             "to check the python312 runtime (default: this one)")
    parser.add_argument("--policy", help="policy JSON to add as policy.json and load at import")
    parser.add_argument("--surfaces", help="route table JSON to add as surfaces.json and load")
    parser.add_argument("--zip-only", action="store_true",
                        help="only build the zip; skip the virtualenv and the import check")
    args = parser.parse_args(argv)
    args.output = args.output.resolve()
    try:
        package(args)
    except PackageError as exc:
        print(f"package: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

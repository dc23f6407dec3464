"""The app environment's lock files: every package pinned exactly with hashes, dev.txt on app.txt's pins."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")


def canonical(name: str) -> str:
    """Return a package name normalised as PyPI does (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(name: str) -> dict[str, str]:
    """Return {package: version} of a lock file, checking that each pin carries at least one hash."""
    lines = (REQUIREMENTS / name).read_text(encoding="utf-8").splitlines()
    pins: dict[str, str] = {}
    for number, line in enumerate(lines):
        if not line or line.startswith((" ", "#")):
            continue
        match = PIN.match(line)
        assert match, f"{name}:{number + 1}: not an exact pin followed by hashes: {line!r}"
        assert lines[number + 1].strip().startswith("--hash=sha256:"), f"{name}:{number + 1}: no hash"
        pins[canonical(match.group(1))] = match.group(2)
    assert pins, f"{name} pins nothing"
    return pins


def direct(name: str) -> dict[str, str]:
    """Return {package: version} of the direct dependencies an .in file names (each pinned exactly)."""
    pins = {}
    for line in (REQUIREMENTS / name).read_text(encoding="utf-8").splitlines():
        if not line or line.startswith(("#", "-r ", "-c ")):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[a-z,-]+\])?==(\S+)$", line)
        assert match, f"{name}: pin direct dependencies exactly: {line!r}"
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def test_the_lock_files_pin_every_package_with_hashes_and_hold_what_the_in_files_name() -> None:
    app, dev = locked("app.txt"), locked("dev.txt")
    for package, version in direct("app.in").items():
        assert app.get(package) == version, f"app.txt: {package} {app.get(package)}, app.in says {version}"
    for package, version in direct("dev.in").items():
        assert dev.get(package) == version, f"dev.txt: {package} {dev.get(package)}, dev.in says {version}"


def test_dev_txt_installs_exactly_what_app_txt_ships() -> None:
    app, dev = locked("app.txt"), locked("dev.txt")
    assert {package: dev.get(package) for package in app} == app


def test_no_lock_file_names_a_local_index_or_folder() -> None:
    for name in ("app.txt", "dev.txt"):
        text = (REQUIREMENTS / name).read_text(encoding="utf-8")
        assert not re.search(r"^--(find-links|index-url|extra-index-url)", text, re.MULTILINE), name

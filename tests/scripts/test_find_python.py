"""scripts/find-python: the newest supported Python for .venv, 3.10 for .venv-rasa, or what to install."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FIND = ROOT / "scripts" / "find-python"


def stub(folder: Path, version: str, *, works: bool = True) -> None:
    """Put a `pythonX.Y` on the PATH that names itself, or fails as an inactive pyenv shim does."""
    script = folder / f"python{version}"
    body = f'echo "/interpreters/{version}"' if works else 'echo "pyenv: not active" >&2; exit 127'
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def find(folder: Path, *versions: str) -> subprocess.CompletedProcess[str]:
    """Run find-python with only the stubs (and the shell's own tools) on PATH: no pyenv."""
    env = {"PATH": f"{folder}:/usr/bin:/bin", "HOME": str(folder)}
    return subprocess.run([str(FIND), *versions], env=env, capture_output=True, text=True, check=False)


def test_the_newest_supported_python_is_chosen_first(tmp_path: Path) -> None:
    stub(tmp_path, "3.12")
    stub(tmp_path, "3.13")
    assert find(tmp_path, "3.13", "3.12").stdout.strip() == "/interpreters/3.13"


def test_without_313_the_app_environment_gets_312(tmp_path: Path) -> None:
    stub(tmp_path, "3.12")
    stub(tmp_path, "3.13", works=False)  # a pyenv shim for a version that is not active
    assert find(tmp_path, "3.13", "3.12").stdout.strip() == "/interpreters/3.12"


def test_with_none_found_it_stops_and_says_what_to_install(tmp_path: Path) -> None:
    stub(tmp_path, "3.10")  # Rasa's interpreter is no substitute for ours
    done = find(tmp_path, "3.13", "3.12")
    assert done.returncode == 1 and not done.stdout
    assert "Python 3.13 or 3.12" in done.stderr and "pyenv install 3.13" in done.stderr


def test_rasa_gets_310_and_is_told_why_when_it_is_missing(tmp_path: Path) -> None:
    stub(tmp_path, "3.10")
    assert find(tmp_path, "3.10").stdout.strip() == "/interpreters/3.10"
    (tmp_path / "python3.10").unlink()
    done = find(tmp_path, "3.10")
    assert done.returncode == 1 and "Rasa 3.6 runs on Python 3.8-3.10" in done.stderr

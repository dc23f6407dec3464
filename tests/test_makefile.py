"""The Makefile as a person uses it: settings precedence.

The precedence tests run the real Makefile (`make -f`) in a temporary folder with its own `.env`, and
read what a recipe would see through `make print-VAR` (a target kept for these tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make") or "make"
MAKEFILE = ROOT / "Makefile"
NAMES = ("DATABASE_URL", "TRACKER_STORE_URL", "TELEGRAM_BOT_TOKEN", "SANIC_HOST")

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None,
    reason="GNU make not installed",
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with an .env.example older than its .env, so make doesn't rewrite the .env."""
    (tmp_path / ".env.example").write_text("DATABASE_URL=\n")
    os.utime(tmp_path / ".env.example", (0, 0))
    return tmp_path


def clean_env(**extra: str) -> dict[str, str]:
    """Return this process's environment without the variables under test (make test exports them)."""
    env = {k: v for k, v in os.environ.items() if k not in NAMES and k not in {"MAKEFLAGS", "MAKELEVEL"}}
    return {**env, **extra}


def seen_by_make(folder: Path, name: str, env: dict[str, str], *args: str) -> str:
    """Return the value a recipe of the real Makefile sees for one variable, run in this folder."""
    done = subprocess.run(
        [MAKE, "--no-print-directory", "-f", str(MAKEFILE), "-C", str(folder), *args, f"print-{name}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.rstrip("\n")


def test_the_environment_wins_over_dot_env_through_make(folder: Path) -> None:
    (folder / ".env").write_text("DATABASE_URL=sqlite:///from-dot-env.db\nTELEGRAM_BOT_TOKEN=from-dot-env\n")
    env = clean_env(
        DATABASE_URL="postgresql://from-environment/db", TELEGRAM_BOT_TOKEN="123:from-environment"
    )
    assert seen_by_make(folder, "DATABASE_URL", env) == "postgresql://from-environment/db"
    assert seen_by_make(folder, "TELEGRAM_BOT_TOKEN", env) == "123:from-environment"


def test_an_empty_value_in_the_environment_still_wins(folder: Path) -> None:
    (folder / ".env").write_text("TELEGRAM_BOT_TOKEN=from-dot-env\n")
    assert seen_by_make(folder, "TELEGRAM_BOT_TOKEN", clean_env(TELEGRAM_BOT_TOKEN="")) == ""


def test_dot_env_wins_over_the_defaults_through_make(folder: Path) -> None:
    (folder / ".env").write_text(
        "# a comment\nTRACKER_STORE_URL=sqlite:///from-dot-env.db\nDATABASE_URL=x$$y\n"
    )
    assert seen_by_make(folder, "TRACKER_STORE_URL", clean_env()) == "sqlite:///from-dot-env.db"
    assert seen_by_make(folder, "DATABASE_URL", clean_env()) == "x$y"  # make's own escaping, as before


def test_defaults_apply_when_neither_sets_a_value(folder: Path) -> None:
    (folder / ".env").write_text("TRACKER_STORE_URL=\n")
    assert seen_by_make(folder, "TRACKER_STORE_URL", clean_env()) == f"sqlite:///{folder}/var/trackers.db"


def test_the_make_command_line_wins_over_everything(folder: Path) -> None:
    (folder / ".env").write_text("DATABASE_URL=sqlite:///from-dot-env.db\n")
    env = clean_env(DATABASE_URL="sqlite:///from-environment.db")
    assert seen_by_make(folder, "DATABASE_URL", env, "DATABASE_URL=sqlite:///cli.db") == "sqlite:///cli.db"

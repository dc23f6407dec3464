"""The Makefile as a person uses it: settings precedence and where the action server listens.

The precedence tests run the real Makefile (`make -f`) in a temporary folder with its own `.env`, and
read what a recipe would see through `make print-VAR` (a target kept for these tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make") or "make"
MAKEFILE = ROOT / "Makefile"
RUN_ALL = ROOT / "scripts" / "run-all"
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
    assert seen_by_make(folder, "SANIC_HOST", clean_env()) == "127.0.0.1"


def test_the_make_command_line_wins_over_everything(folder: Path) -> None:
    (folder / ".env").write_text("DATABASE_URL=sqlite:///from-dot-env.db\n")
    env = clean_env(DATABASE_URL="sqlite:///from-environment.db")
    assert seen_by_make(folder, "DATABASE_URL", env, "DATABASE_URL=sqlite:///cli.db") == "sqlite:///cli.db"


# ---------------------------------------------------------------- where the action server listens


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """Return the local addresses with a socket listening on this TCP port (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (each in its own group); stopped at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc")
@pytest.mark.skipif(
    not (ROOT / ".venv" / ".installed").exists(), reason="needs the app environment (make setup)"
)
def test_make_run_actions_listens_on_loopback_only(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    # `-o ready`: the recipe itself, without migrating (the action server needs no database to listen).
    command = [MAKE, "--no-print-directory", "-o", "ready", "run-actions", f"ACTIONS_PORT={port}"]
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'signpost.db'}")
    log = (tmp_path / "actions.log").open("wb")
    started.append(
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    )
    deadline = time.monotonic() + 120
    while not listening_addresses(port):
        assert started[0].poll() is None, (tmp_path / "actions.log").read_text()
        assert time.monotonic() < deadline, "the action server did not start within 2 minutes"
        time.sleep(0.5)
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only, not 0.0.0.0


def test_run_all_starts_the_action_server_on_loopback() -> None:
    line = next(line for line in RUN_ALL.read_text().splitlines() if "-m rasa_sdk" in line)
    assert line.startswith('SANIC_HOST="${SANIC_HOST:-127.0.0.1}" ')


def test_make_test_runs_offline_without_the_dependency_audit() -> None:
    """`make audit` needs an advisory service on the network; `make test` must pass without one."""
    text = MAKEFILE.read_text(encoding="utf-8")
    prerequisites = next(line for line in text.splitlines() if line.startswith("test:"))
    assert "audit" not in prerequisites.split("##")[0].split()
    assert any(line.startswith("audit:") for line in text.splitlines())
    assert "make audit" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")

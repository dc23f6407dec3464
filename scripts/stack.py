"""Start the real action server and Rasa server on free loopback ports (end-to-end tests, `make bench`)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "signpost.tar.gz"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
APP_PYTHON = ROOT / ".venv" / "bin" / "python"
START_TIMEOUT_SECONDS = 240


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not start within {START_TIMEOUT_SECONDS}s; see {log}")


@dataclass(frozen=True)
class Stack:
    """The running assistant: Rasa's base URL and the two processes."""

    rasa_url: str
    rasa: subprocess.Popen[bytes]
    actions: subprocess.Popen[bytes]
    database_url: str


@contextmanager
def running_stack(workdir: Path, model: Path = MODEL, database_url: str | None = None) -> Iterator[Stack]:
    """Start the action server and Rasa (loopback only), yield when both answer, stop them after.

    The database (default: a new SQLite file in `workdir`) is migrated and seeded first, as `make run` does.
    """
    action_port, rasa_port = free_port(), free_port()
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{action_port}/webhook"\n')
    database_url = database_url or f"sqlite:///{workdir / 'signpost.db'}"
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DATABASE_URL": database_url,
    }
    subprocess.run([str(APP_PYTHON), "-m", "actions.directory", "ready"], cwd=ROOT, env=env, check=True)
    logs = {"actions": workdir / "actions.log", "rasa": workdir / "rasa.log"}
    with logs["actions"].open("wb") as actions_log, logs["rasa"].open("wb") as rasa_log:
        actions = subprocess.Popen(
            [str(APP_PYTHON), "-m", "rasa_sdk", "--actions", "actions", "--port", str(action_port)],
            cwd=ROOT,
            env=env,
            stdout=actions_log,
            stderr=subprocess.STDOUT,
        )
        rasa = subprocess.Popen(
            [
                str(RASA), "run", "--model", str(model), "--interface", "127.0.0.1",
                "--port", str(rasa_port), "--endpoints", str(endpoints),
                "--credentials", str(ROOT / "credentials.yml"),
            ],
            cwd=ROOT,
            env=env,
            stdout=rasa_log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_until_up(f"http://127.0.0.1:{action_port}/health", actions, logs["actions"])
            _wait_until_up(f"http://127.0.0.1:{rasa_port}/", rasa, logs["rasa"])
            yield Stack(f"http://127.0.0.1:{rasa_port}", rasa, actions, database_url)
        finally:
            for process in (rasa, actions):
                process.terminate()
            for process in (rasa, actions):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


@contextmanager
def running_adapter(
    workdir: Path, env: dict[str, str], name: str = "adapter"
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `python -m bot` (the Telegram adapter) with extra environment; stop it (SIGTERM) after.

    The caller waits for it to be ready (e.g. until its fake Bot API sees getUpdates).
    """
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(APP_PYTHON), "-m", "bot"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

"""Start the real action server and Rasa server on free loopback ports (end-to-end tests, `make bench`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import yaml

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
    """The running assistant: Rasa's base URL(s) and the processes."""

    rasa_urls: tuple[str, ...]
    rasa: subprocess.Popen[bytes]
    actions: subprocess.Popen[bytes]
    database_url: str
    tracker_store_url: str

    @property
    def rasa_url(self) -> str:
        """The first Rasa server's base URL (the only one unless several were asked for)."""
        return self.rasa_urls[0]


def rasa_url_of(url: str) -> str:
    """Return an SQLAlchemy URL as Rasa's environment reads it (psycopg2 there, psycopg 3 here)."""
    return (
        "postgresql://" + url.removeprefix("postgresql+psycopg://") if url.startswith("postgresql+") else url
    )


def production_env(action_url: str, tracker_store_url: str, lock_store_url: str) -> dict[str, str]:
    """Return the environment endpoints.prod.yml reads: action server, tracker store, Redis lock store."""
    redis = urlparse(lock_store_url)
    return {
        "ACTION_ENDPOINT_URL": action_url,
        "TRACKER_STORE_URL": rasa_url_of(tracker_store_url),
        "REDIS_HOST": redis.hostname or "127.0.0.1",
        "REDIS_PORT": str(redis.port or 6379),
        "REDIS_DB": (redis.path or "/0").strip("/") or "0",
    }


@contextmanager
def running_stack(
    workdir: Path,
    model: Path = MODEL,
    database_url: str | None = None,
    tracker_store_url: str | None = None,
    lock_store_url: str | None = None,
    rasa_instances: int = 1,
    rasa_workers: int = 1,
    action_port: int | None = None,
    action_url: str | None = None,
) -> Iterator[Stack]:
    """Start the action server and Rasa (loopback only), yield when all answer, stop them after.

    The database (default: a new SQLite file in `workdir`) is migrated and seeded first, as `make run` does.
    Rasa keeps conversations in an SQL tracker store (default: another SQLite file in `workdir`). With a
    Redis lock store (`lock_store_url`, redis://host:port/db) Rasa runs with the production profile,
    `endpoints.prod.yml`, so several instances share conversations and take turns on each one, and
    each instance may run several worker processes on its one port (`rasa_workers`, Rasa's
    SANIC_WORKERS, which Rasa allows only with such a lock store). `action_port` chooses the action
    server's port, and `action_url` sends Rasa's action calls elsewhere (a test's proxy in front of it).
    """
    if rasa_workers > 1 and not lock_store_url:
        raise ValueError("several Rasa workers need a shared lock store (lock_store_url)")
    action_port, rasa_ports = action_port or free_port(), [free_port() for _ in range(rasa_instances)]
    database_url = database_url or f"sqlite:///{workdir / 'signpost.db'}"
    tracker_store_url = tracker_store_url or f"sqlite:///{workdir / 'trackers.db'}"
    action_url = action_url or f"http://127.0.0.1:{action_port}/webhook"
    endpoints = workdir / "endpoints.yml"
    store_type = yaml.safe_load((ROOT / "endpoints.yml").read_text())["tracker_store"]["type"]
    endpoints.write_text(
        f'action_endpoint:\n  url: "{action_url}"\n'
        f'tracker_store:\n  type: {store_type}\n  url: "{rasa_url_of(tracker_store_url)}"\n'
    )
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": "1",  # as the Makefile sets (one thread a process: less contention)
        "TF_NUM_INTEROP_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DATABASE_URL": database_url,
        "TRACKER_STORE_URL": tracker_store_url,
    }
    subprocess.run([str(APP_PYTHON), "-m", "actions.directory", "ready"], cwd=ROOT, env=env, check=True)
    rasa_env = env
    if lock_store_url:
        endpoints = ROOT / "endpoints.prod.yml"
        rasa_env = {
            **env,
            **production_env(action_url, tracker_store_url, lock_store_url),
            "SANIC_WORKERS": str(rasa_workers),
        }
    with ExitStack() as stack:
        actions_log = workdir / "actions.log"
        actions = stack.enter_context(
            _process(
                [str(APP_PYTHON), "-m", "rasa_sdk", "--actions", "actions", "--port", str(action_port)],
                env,
                actions_log,
            )
        )
        rasas = []
        for index, port in enumerate(rasa_ports):
            log = workdir / ("rasa.log" if index == 0 else f"rasa{index + 1}.log")
            command = [
                str(RASA), "run", "--model", str(model), "--interface", "127.0.0.1",
                "--port", str(port), "--endpoints", str(endpoints),
                "--credentials", str(ROOT / "credentials.yml"),
            ]  # fmt: skip
            rasas.append((stack.enter_context(_process(command, rasa_env, log)), log))
        _wait_until_up(f"http://127.0.0.1:{action_port}/health", actions, actions_log)
        for (process, log), port in zip(rasas, rasa_ports, strict=True):
            _wait_until_up(f"http://127.0.0.1:{port}/", process, log)
        urls = tuple(f"http://127.0.0.1:{port}" for port in rasa_ports)
        yield Stack(urls, rasas[0][0], actions, database_url, tracker_store_url)


@contextmanager
def _process(
    command: list[str], env: dict[str, str], log: Path, mode: str = "wb"
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process with its output in a log file; stop it (SIGTERM, then SIGKILL) after.

    It runs in a process group of its own, and the whole group is killed at the end: the action server
    (rasa-sdk 3.21, Sanic 25) and Rasa's workers serve from child processes.
    """
    with log.open(mode) as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
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
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left


@contextmanager
def running_adapter(
    workdir: Path, env: dict[str, str], name: str = "adapter"
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `python -m bot` (Telegram and the web chat) with extra environment; stop it (SIGTERM) after.

    The web chat listens on a free port unless `env` names one (WEB_PORT). The caller waits for it to be
    ready (e.g. until its fake Bot API sees getUpdates).
    """
    env = {"WEB_PORT": str(free_port()), **env}
    # Appended, so a restarted adapter's log follows the first one's.
    with _process([str(APP_PYTHON), "-m", "bot"], {**os.environ, **env}, workdir / f"{name}.log", "ab") as p:
        yield p

"""When Rasa fails to handle a message, what the person wrote still reaches none of its logs (issue 14, A2).

`test_what_a_person_writes_reaches_no_process_log` scans the logs after conversations that went well.
Rasa's REST channel logs the message itself when handling it fails, so these tests make the real Rasa
server fail the ways a production one does, and scan everything it wrote (stdout and stderr, every
level it logs at):

- the action server answers after the adapter has given up: the adapter closes the connection and
  Sanic cancels the handler;
- the tracker store's database refuses to write in the middle of a conversation (another writer
  holds the SQLite file's write lock longer than Rasa waits): Rasa answers from memory and logs the
  database's error, which must not quote the events it was writing;
- the Redis lock store (the production profile's) stops.

Each test first shows that the failure really happened (Rasa logged it), then that no word of the
message is anywhere in the log. One Rasa server serves them all, with the production profile's
endpoints (`endpoints.prod.yml`), its action calls through a proxy that can be made slow, its tracker
store in an SQLite file and its lock store in a Redis server of its own.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scripts.stack import MODEL, RASA, free_port, running_stack
from tests.e2e.conftest import new_sender, texts
from tests.e2e.proxy import RoundRobinProxy

CLIENT_TIMEOUT_SECONDS = 3.0  # the adapter's RASA_TIMEOUT_SECONDS, shortened
ACTION_DELAY_SECONDS = 20.0  # far longer: the client has long gone when the action answers
LOGGED_WITHIN_SECONDS = 30.0


class RedisServer:
    """A redis-server of the test's own on a loopback port, which the test can stop and start."""

    def __init__(self, workdir: Path) -> None:
        program = shutil.which("redis-server")
        if program is None:
            pytest.skip("redis-server is not installed: the lock store test needs one to stop")
        self.program, self.workdir, self.port = program, workdir, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # Nothing on disk: a stopped lock store loses its locks, as the production one does.
        command = [self.program, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        self.process = subprocess.Popen(
            [*command, "--appendonly", "no"], cwd=self.workdir, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None


@dataclass(frozen=True)
class FailingRasa:
    """The running Rasa server, its log, and the handles that make it fail."""

    rasa_url: str
    log: Path
    tracker_db: Path
    actions: RoundRobinProxy
    redis: RedisServer

    def post(self, sender: str, message: str, timeout: float = 120) -> httpx.Response:
        return httpx.post(
            f"{self.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": message},
            timeout=timeout,
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailingRasa]:
    if not MODEL.exists() or not RASA.exists():
        pytest.skip("no trained model or Rasa environment: run `make train` (make test does)")
    workdir = tmp_path_factory.mktemp("failing")
    redis = RedisServer(workdir)
    redis.start()
    action_port = free_port()
    try:
        with (
            RoundRobinProxy([f"http://127.0.0.1:{action_port}"], timeout=120) as actions,
            running_stack(
                workdir,
                action_port=action_port,
                action_url=f"{actions.base_url}/webhook",
                lock_store_url=redis.url,
            ) as stack,
        ):
            yield FailingRasa(stack.rasa_url, workdir / "rasa.log", workdir / "trackers.db", actions, redis)
    finally:
        redis.stop()


def logged_after(failing: FailingRasa, start: int, found: Callable[[str], bool]) -> str:
    """Wait until what Rasa logged after `start` (a length of the log) satisfies `found`; return it."""
    deadline = time.monotonic() + LOGGED_WITHIN_SECONDS
    while True:
        written = failing.log_text()[start:]
        if found(written):
            return written
        if time.monotonic() > deadline:
            raise AssertionError(f"Rasa did not log the failure; it logged:\n{written[-3000:]}")
        time.sleep(0.2)


def assert_not_logged(failing: FailingRasa, *words: str) -> None:
    log = failing.log_text()
    assert log, "Rasa wrote no log at all: the scan would prove nothing"
    for word in words:
        assert word.lower() not in log.lower(), f"{word!r} is in Rasa's log:\n{log[-3000:]}"


def test_a_message_the_adapter_gave_up_on_leaves_no_words_in_rasas_log(failing: FailingRasa) -> None:
    start = len(failing.log_text())
    failing.actions.delay_requests(ACTION_DELAY_SECONDS)  # action_session_start runs on a first message
    try:
        with pytest.raises(httpx.ReadTimeout):
            failing.post(
                new_sender(),
                "my uncle Quillwort keeps sending me messages about marram",
                timeout=CLIENT_TIMEOUT_SECONDS,
            )
        written = logged_after(failing, start, lambda log: "rest.message.received.timeout" in log)
    finally:
        failing.actions.delay_requests(0)
    assert "rest.message.received.failure" not in written
    assert_not_logged(failing, "Quillwort", "marram")


def test_a_tracker_store_that_cannot_write_leaves_no_words_in_rasas_log(failing: FailingRasa) -> None:
    sender = new_sender()
    assert texts(failing.post(sender, "hi").json())  # the conversation is under way
    start = len(failing.log_text())
    holder = sqlite3.connect(failing.tracker_db, timeout=1, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # a writer that never finishes: Rasa may read, not write
        answer = failing.post(sender, "a boy called Zebulon posted my pictures on his page zarf")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answer.status_code == 200  # Rasa answers from memory when its store fails
    written = logged_after(failing, start, lambda log: "database is locked" in log)
    assert "trying to save conversation tracker" in written
    # SQLAlchemy quotes a failed statement's parameters, and an event's are its JSON, the message in it
    # (only SQLAlchemy's cut of long values to their ends hides it, by a few characters).
    assert "INSERT INTO events" in written and "[parameters:" not in written, written
    assert_not_logged(failing, "Zebulon", "zarf")


def test_a_lock_store_that_stopped_leaves_no_words_in_rasas_log(failing: FailingRasa) -> None:
    sender = new_sender()
    assert texts(failing.post(sender, "hi").json())
    start = len(failing.log_text())
    failing.redis.stop()
    try:
        answer = failing.post(sender, "someone named Ozymandias says he will share my nudes quagga")
    finally:
        failing.redis.start()
    assert answer.status_code == 200 and answer.json() == []  # Rasa's channel answers nothing
    logged_after(failing, start, lambda log: "rest.message.received.failure" in log)
    assert_not_logged(failing, "Ozymandias", "quagga")
    assert texts(failing.post(sender, "hi").json())  # and Rasa serves the person again

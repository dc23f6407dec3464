"""Checks of the REST channel that logs no message (rasa_addons/channels.py), run in the Rasa environment.

tests/rasa_addons/test_channels.py runs this file and reports each check by name. The real server's
failures are in tests/e2e/test_rasa_failures.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
import sys
from pathlib import Path

import yaml
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.run import _create_single_channel

from rasa_addons import channels

ROOT = Path(__file__).resolve().parent.parent.parent
MARKER = "Quetzalcoatl"


def logged_while(run: object) -> str:
    """Run a coroutine and return everything logged meanwhile (every logger, every level)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        asyncio.run(run)  # type: ignore[arg-type]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return out.getvalue()


def message() -> UserMessage:
    return UserMessage(f"my brother {MARKER} shared my photos", CollectingOutputChannel(), "ref-1")


def check_credentials_name_our_channel_and_rasa_serves_it_at_rest() -> None:
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    assert list(credentials) == ["rasa_addons.channels.RestInput"], credentials
    channel = _create_single_channel(
        "rasa_addons.channels.RestInput", credentials["rasa_addons.channels.RestInput"]
    )
    assert type(channel) is channels.RestInput
    assert channel.url_prefix() == "rest"  # POST /webhooks/rest/webhook, as bot/rasa_client.py posts

    async def handler(_: UserMessage) -> None:
        return None

    routes = {route.uri for route in channel.blueprint(handler)._future_routes}
    assert routes == {"/", "/webhook"}, routes


def check_a_failure_is_logged_by_type_without_the_message_or_the_errors_words() -> None:
    async def fails(received: UserMessage) -> None:
        try:
            raise sqlite3.OperationalError(f"database is locked [parameters: ('{received.text}',)]")
        except sqlite3.OperationalError as error:
            raise RuntimeError(f"could not save {received.text}") from error

    log = logged_while(channels.quietly(fails)(message()))
    assert "rest.message.received.failure" in log, log
    assert "builtins.RuntimeError at channel_checks.py" in log and "sqlite3.OperationalError" in log, log
    assert MARKER not in log, log


def check_a_cancelled_message_is_logged_without_it() -> None:
    started = asyncio.Event()

    async def waits(_: UserMessage) -> None:
        started.set()
        await asyncio.sleep(3600)

    async def cancel() -> None:
        task = asyncio.ensure_future(channels.quietly(waits)(message()))
        await started.wait()
        task.cancel()  # as Sanic does when the client closes the connection
        await task  # ends as Rasa's handler does: the answer collected so far goes back

    log = logged_while(cancel())
    assert "rest.message.received.timeout" in log, log
    assert MARKER not in log, log


def tried(message_id: str | None = "m-1", sender: str = "ref-1") -> UserMessage:
    """A message as the adapter sends it: its id in the REST metadata, the same on every retry."""
    metadata = {"message_id": message_id} if message_id is not None else None
    return UserMessage("hello", CollectingOutputChannel(), sender, metadata=metadata)


class Handling:
    """Rasa's message handling, counted: each message gets an answer naming how many came before."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, received: UserMessage) -> None:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        await received.output_channel.send_text_message(received.sender_id, f"answer {self.calls}")


def answers(received: UserMessage) -> list[str]:
    return [m.get("text") for m in received.output_channel.messages]  # type: ignore[attr-defined]


def check_a_retry_while_rasa_still_handles_the_first_try_gets_its_answer_and_is_not_a_new_turn() -> None:
    async def run() -> None:
        handling, channel = Handling(), channels.RestInput()
        handle = channel.once(handling)
        first, retry = tried(), tried()
        first_task = asyncio.ensure_future(handle(first))
        await handling.started.wait()
        retry_task = asyncio.ensure_future(handle(retry))
        await asyncio.sleep(0)
        handling.release.set()
        await asyncio.gather(first_task, retry_task)
        assert handling.calls == 1, handling.calls
        assert answers(first) == answers(retry) == ["answer 1"], (answers(first), answers(retry))

    asyncio.run(run())


def check_a_retry_after_the_first_try_was_answered_gets_the_recorded_answer() -> None:
    async def run() -> None:
        handling, channel = Handling(), channels.RestInput()
        handling.release.set()
        handle = channel.once(handling)
        await handle(tried())
        again = tried()
        await handle(again)
        other = tried("m-2")
        await handle(other)  # another message: a turn of its own
        elsewhere = tried(sender="ref-2")
        await handle(elsewhere)  # the same id from someone else: theirs
        without = tried(None)
        await handle(without)
        assert handling.calls == 4, handling.calls
        assert answers(again) == ["answer 1"] and answers(other) == ["answer 2"], answers(again)

    asyncio.run(run())


def check_a_first_try_that_was_cancelled_is_handled_again() -> None:
    async def run() -> None:
        handling, channel = Handling(), channels.RestInput()
        handle = channels.quietly(channel.once(handling))  # as the blueprint chains them
        first = asyncio.ensure_future(handle(tried()))
        await handling.started.wait()
        first.cancel()  # the client left; Rasa saved nothing of it
        await asyncio.gather(first, return_exceptions=True)
        handling.release.set()
        retry = tried()
        await handle(retry)
        assert handling.calls == 2 and answers(retry) == ["answer 2"], (handling.calls, answers(retry))

    asyncio.run(run())


def main() -> None:
    results = {}
    for name, check in sorted(globals().items()):
        if name.startswith("check_"):
            try:
                check()
                results[name] = "ok"
            except Exception as failed:  # every failure is reported by name
                results[name] = f"failed: {failed!r}"
    print(json.dumps(results))
    sys.exit(0)


if __name__ == "__main__":
    main()

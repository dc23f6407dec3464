"""Rasa's REST channel, without what a person wrote in its error log.

Rasa 3.6's `RestInput` logs the message (`text=...`) at ERROR when handling it fails or is cancelled:
the adapter gave up after its timeout and closed the connection, the lock store (Redis) was down, an
action raised. Our messages come from young people telling us they have been hurt, and they must never
reach a log (docs/privacy.md). This channel is Rasa's, with the same name (`rest`), so the same path
(`POST /webhooks/rest/webhook`) and the same answers; only its failures are logged differently: by the
error's type and where it was raised, never the message and never the error's own words, which can
quote the message (a database error quotes the statement's parameters).

It also takes each message once. The adapter sends every message with its own id
(`metadata.message_id`, the same on every retry). A retry of a message Rasa is still handling waits for
that handling and gets its answer; a retry of one Rasa answered gets the recorded answer; neither is a new
turn. A first try whose handling was cancelled (its client left before Rasa saved anything) is handled
again. What is remembered is per process and in memory only: the ids and Rasa's answers (never what
the person wrote), the last `REMEMBERED_MESSAGES`; with several Rasa processes a retry that reaches
another one is handled there (the adapter first looks for a finished answer in the tracker store).

Named in credentials.yml by module path: `rasa_addons.channels.RestInput:`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput as RasaRestInput
from sanic import Blueprint

logger = logging.getLogger(__name__)

Handler = Callable[[UserMessage], Awaitable[Any]]
Answer = list[dict[str, Any]]
REMEMBERED_MESSAGES = 10_000


def describe(error: BaseException) -> str:
    """Name an error and its causes with where each was raised, never with their messages."""
    parts = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        last = frames[-1] if frames else None
        where = f" at {Path(last.filename).name}:{last.lineno} in {last.name}" if last else ""
        kind = type(current)
        parts.append(f"{kind.__module__}.{kind.__qualname__}{where}")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return " <- ".join(parts)


class RestInput(RasaRestInput):
    """Rasa's REST channel (`rest`), whose failures are logged without the person's message."""

    def __init__(self) -> None:
        super().__init__()
        # (sender, message id) -> the answer, or a future of it while the first try is handled.
        self._answers: OrderedDict[tuple[str, str], asyncio.Future[Answer | None]] = OrderedDict()

    @classmethod
    def name(cls) -> str:
        """Keep Rasa's name, so the webhook stays at /webhooks/rest/webhook."""
        return "rest"

    def blueprint(self, on_new_message: Handler) -> Blueprint:
        """Rasa's routes, with every message handled once and quietly (`once` inside `quietly`, so that
        it sees a cancelled first try as cancelled, not as answered with nothing)."""
        return super().blueprint(quietly(self.once(on_new_message)))

    def once(self, on_new_message: Handler) -> Handler:
        """Handle each (sender, metadata.message_id) once; a retry gets the first try's answer."""

        async def handle(message: UserMessage) -> None:
            key = _key(message)
            if key is None:
                await on_new_message(message)
                return
            while (earlier := self._answers.get(key)) is not None:
                answer = await asyncio.shield(earlier)
                if answer is None:  # the first try was cancelled before Rasa answered it
                    continue
                logger.info("rest.message.duplicate: a retry got the answer of its first try")
                message.output_channel.messages.extend(copy.deepcopy(answer))  # type: ignore[attr-defined]
                return
            answered: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
            self._answers[key] = answered
            while len(self._answers) > REMEMBERED_MESSAGES:
                self._answers.popitem(last=False)
            try:
                await on_new_message(message)
            except BaseException:
                if self._answers.get(key) is answered:
                    del self._answers[key]
                answered.set_result(None)
                raise
            answered.set_result(copy.deepcopy(message.output_channel.messages))  # type: ignore[attr-defined]

        return handle


def _key(message: UserMessage) -> tuple[str, str] | None:
    """Return a message's (sender, id) if it carries one and its answer is collected (the REST route)."""
    message_id = (message.metadata or {}).get("message_id")
    if not isinstance(message_id, str) or not isinstance(message.output_channel, CollectingOutputChannel):
        return None
    return str(message.sender_id), message_id


def quietly(on_new_message: Handler) -> Handler:
    """Handle a message as Rasa does, logging a failure or a cancellation without its text.

    Rasa's channel catches both around this call and logs the text; here they are caught first and
    end the same way its handler does (the answer collected so far, 200), so the person's words never
    reach its `except` clauses. The streaming route goes through here too.
    """

    async def handle(message: UserMessage) -> None:
        try:
            await on_new_message(message)
        except asyncio.CancelledError:
            # The client went away (its timeout) and Sanic cancelled the handler, as Rasa's does.
            logger.error("rest.message.received.timeout: handling was cancelled (the client left)")
        except Exception as error:
            logger.error("rest.message.received.failure: %s", describe(error))

    return handle

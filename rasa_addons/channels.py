"""Rasa's REST channel, without what a person wrote in its error log.

Rasa 3.6's `RestInput` logs the message (`text=...`) at ERROR when handling it fails or is cancelled:
the adapter gave up after its timeout and closed the connection, the lock store (Redis) was down, an
action raised. Our messages come from young people telling us they have been hurt, and they must never
reach a log (docs/privacy.md). This channel is Rasa's, with the same name (`rest`), so the same path
(`POST /webhooks/rest/webhook`) and the same answers; only its failures are logged differently: by the
error's type and where it was raised, never the message and never the error's own words, which can
quote the message (a database error quotes the statement's parameters).

Named in credentials.yml by module path: `rasa_addons.channels.RestInput:`.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput as RasaRestInput
from sanic import Blueprint

logger = logging.getLogger(__name__)

Handler = Callable[[UserMessage], Awaitable[Any]]


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

    @classmethod
    def name(cls) -> str:
        """Keep Rasa's name, so the webhook stays at /webhooks/rest/webhook."""
        return "rest"

    def blueprint(self, on_new_message: Handler) -> Blueprint:
        """Rasa's routes, with every message handled by `quietly(on_new_message)`."""
        return super().blueprint(quietly(on_new_message))


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

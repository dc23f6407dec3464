"""Talking to Rasa's REST channel (credentials.yml `rest:`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from actions.handover_signal import HandoverRequest, PayloadError

logger = logging.getLogger(__name__)

REST_WEBHOOK = "/webhooks/rest/webhook"


class RasaUnavailableError(Exception):
    """Rasa did not answer in time, or answered with an error."""


class RasaTimeoutError(RasaUnavailableError):
    """Rasa took the request but did not answer within our patience: it may still have handled it."""


@dataclass(frozen=True)
class Button:
    """A button Rasa offered: what the person sees, and the payload sent back when pressed."""

    title: str
    payload: str


@dataclass(frozen=True)
class BotMessage:
    """One message of Rasa's reply."""

    text: str | None = None
    buttons: tuple[Button, ...] = ()
    custom: dict[str, Any] | None = None
    image: str | None = None

    handover: HandoverRequest | None = None


def recorded_reply(events: list[dict[str, Any]]) -> list[BotMessage]:
    """Return Rasa's answer as its tracker store recorded it (bot events' data), in the REST shape."""
    body = []
    for event in events:
        found = event.get("data")
        data: dict[str, Any] = found if isinstance(found, dict) else {}
        body.append(
            {
                "text": event.get("text"),
                "buttons": data.get("buttons"),
                "custom": data.get("custom"),
                "image": data.get("image"),
            }
        )
    return parse_reply(body)


def parse_reply(body: Any) -> list[BotMessage]:
    """Return the messages of a REST channel reply, skipping anything malformed."""
    if not isinstance(body, list):
        raise RasaUnavailableError("Rasa's reply was not a list of messages")
    messages = []
    for item in body:
        if not isinstance(item, dict):
            continue
        buttons = tuple(
            Button(str(b.get("title", "")), str(b.get("payload", "")))
            for b in item.get("buttons") or []
            if isinstance(b, dict)
        )
        custom = item.get("custom") if isinstance(item.get("custom"), dict) else None
        messages.append(
            BotMessage(
                text=item.get("text"),
                buttons=buttons,
                custom=custom,
                image=item.get("image"),
                handover=_handover(custom),
            )
        )
    return messages


def _handover(custom: dict[str, Any] | None) -> HandoverRequest | None:
    """Return the request for a person a message carries; a malformed one is logged and not acted on."""
    try:
        return HandoverRequest.parse(custom)
    except PayloadError as exc:  # what is wrong with its shape, never what it holds
        logger.error("ignored a malformed handover signal from Rasa: %s", exc)
        return None


@dataclass
class RasaClient:
    """An HTTP client for Rasa's REST channel, opened once and reused."""

    base_url: str
    timeout_seconds: float = 4.0
    transport: httpx.AsyncBaseTransport | None = None
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    async def __aenter__(self) -> RasaClient:
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout_seconds, transport=self.transport
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, sender: str, message: str, message_id: str | None = None) -> list[BotMessage]:
        """Send one message (text or a /payload) for a sender; return Rasa's reply.

        `message_id` goes in the REST metadata (Rasa keeps it on the user event in its tracker store), the
        same on every retry, so a retry can find out whether Rasa took the message already.
        """
        if self._client is None:
            raise RuntimeError("RasaClient is not open; use `async with`")
        body: dict[str, Any] = {"sender": sender, "message": message}
        if message_id is not None:
            body["metadata"] = {"message_id": message_id}
        try:
            response = await self._client.post(REST_WEBHOOK, json=body)
            response.raise_for_status()
            return parse_reply(response.json())
        except (httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:  # sent; Rasa may have handled it
            logger.warning("Rasa took a message but did not answer: %s", type(exc).__name__)
            raise RasaTimeoutError(type(exc).__name__) from exc
        except (httpx.HTTPError, ValueError) as exc:
            # The reason, never the message text (non-negotiable 3).
            logger.warning("Rasa unavailable: %s", type(exc).__name__)
            raise RasaUnavailableError(type(exc).__name__) from exc

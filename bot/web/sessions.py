"""Web sessions: a random id per browser, kept in a cookie, and everything derived from it under our key.

Nothing about a session is stored: the person's pseudonym (all Rasa and the database see), their chat id
and the form token against cross-site posts are each an HMAC of the session id under PSEUDONYM_KEY, so
a restart of the adapter carries on the same conversation. Quick exit ends a session: its id is refused
afterwards (kept in memory for a day; the cookie is cleared too).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict

from bot.people import Person
from bot.pseudonym import pseudonym
from bot.web.chats import WEB_CHAT_BASE

COOKIE = "signpost_session"
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
ENDED_KEPT_SECONDS = 24 * 3600.0
ENDED_KEPT = 100_000
CHAT_ID_BYTES = 7  # 56 bits above WEB_CHAT_BASE: below 2**63, the database's BIGINT


class WebSessions:
    """Session ids and what each one stands for."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._ended: OrderedDict[str, float] = OrderedDict()

    @staticmethod
    def new() -> str:
        """Return a new, unguessable session id."""
        return secrets.token_urlsafe(32)

    def valid(self, session_id: str | None) -> bool:
        """Return whether a cookie's value is a session id that has not ended."""
        return bool(session_id) and bool(SESSION_ID.match(session_id or "")) and session_id not in self._ended

    def _mac(self, purpose: str, session_id: str) -> bytes:
        return hmac.new(self._key, f"web-{purpose}:{session_id}".encode(), hashlib.sha256).digest()

    def person(self, session_id: str) -> Person:
        """Return the person behind a session: their web chat and their pseudonym."""
        number = int.from_bytes(self._mac("chat", session_id)[:CHAT_ID_BYTES], "big")
        return Person(WEB_CHAT_BASE + number, pseudonym(self._key, f"web:{session_id}"))

    def form_token(self, session_id: str) -> str:
        """Return the token every form of the session's page carries (checked on every POST)."""
        return self._mac("form", session_id).hex()[:32]

    def form_token_ok(self, session_id: str, token: str | None) -> bool:
        """Return whether a POST carries its session's form token."""
        return bool(token) and hmac.compare_digest(self.form_token(session_id), token or "")

    def end(self, session_id: str) -> None:
        """End a session (quick exit): its id is refused from now on."""
        now = time.monotonic()
        self._ended[session_id] = now
        while self._ended and (
            len(self._ended) > ENDED_KEPT or next(iter(self._ended.values())) < now - ENDED_KEPT_SECONDS
        ):
            self._ended.popitem(last=False)

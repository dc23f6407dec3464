"""Encryption at rest for what a case holds about a person: their words and how to reach their chat.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under keys from `TRANSCRIPT_KEYS`. The first
key encrypts; every key listed decrypts, so a key can be rotated without downtime (README, "Rotating the
transcript key"). A copied database file holds only tokens: unreadable without a key.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

UNREADABLE = "[unreadable: written with a key that is no longer in TRANSCRIPT_KEYS]"


def new_key() -> str:
    """Return a fresh random key, in the form TRANSCRIPT_KEYS takes."""
    return Fernet.generate_key().decode("ascii")


def check_key(key: str) -> None:
    """Raise ValueError if the text is not a Fernet key (32 bytes, URL-safe base64)."""
    Fernet(key.encode("ascii"))


class Cipher:
    """Seals text with the newest key and opens text sealed with any key still listed."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in keys])

    def seal(self, text: str) -> str:
        """Return the text encrypted (and authenticated) under the newest key."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        """Return the text of a token; a placeholder if no listed key can open it."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            return UNREADABLE

    def rotate(self, token: str) -> str | None:
        """Return the token re-encrypted under the newest key; None if no listed key can open it."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            return None

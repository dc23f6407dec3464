"""Pseudonymous ids: nothing past the adapter sees a Telegram id (DESIGN.md, non-negotiable 3)."""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(key: bytes, user_id: int | str) -> str:
    """Return the HMAC-SHA256 of a user id under the secret key, as hex."""
    return hmac.new(key, str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()

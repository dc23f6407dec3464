"""Pseudonymous ids: nothing past the adapter sees a Telegram id (DESIGN.md, non-negotiable 3)."""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(key: bytes, user_id: int | str) -> str:
    """Return the HMAC-SHA256 of a user id under the secret key, as hex."""
    return hmac.new(key, str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()


CASE_TAG_CHARS = 8


def case_tag(user_ref: str, number: int) -> str:
    """Return the short tag moderators see for a person in one case: an HMAC of the case number under
    the pseudonym, so it differs from case to case (also after /forget) and can't link a person's cases."""
    return hmac.new(user_ref.encode("utf-8"), str(number).encode("utf-8"), hashlib.sha256).hexdigest()[
        :CASE_TAG_CHARS
    ]

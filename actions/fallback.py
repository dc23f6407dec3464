"""Deciding whether a message the assistant did not understand might still mean danger or a disclosure."""

from __future__ import annotations

from typing import Any

from actions.disclosure import DISCLOSURE_PREFIX, RISK_INTENT

FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE_INTENT = "out_of_scope"
# The readings after which the assistant is unsure what the message is about.
UNCLEAR_INTENTS = (FALLBACK_INTENT, OUT_OF_SCOPE_INTENT)
# A message the classifier is unsure about, where danger is still one of its two best guesses, gets
# the crisis numbers rather than only "sorry, I didn't get that".
RISK_FLOOR = 0.15
# An unclear message where a disclosure is one of the three best guesses gets a gentle check
# ("It sounds like something may have happened") with the harms as buttons.
DISCLOSURE_FLOOR = 0.1


def _guesses(intent_ranking: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Return the n best guesses other than "not sure" itself (out_of_scope counts as a guess)."""
    return [i for i in intent_ranking if i.get("name") != FALLBACK_INTENT][:n]


def looks_like_risk(intent_ranking: list[dict[str, Any]]) -> bool:
    """Return True when risk_immediate is one of the two best guesses for a message."""
    return any(
        i.get("name") == RISK_INTENT and float(i.get("confidence") or 0) >= RISK_FLOOR
        for i in _guesses(intent_ranking, 2)
    )


def looks_like_disclosure(intent_ranking: list[dict[str, Any]]) -> bool:
    """Return True when a disclosure is one of the three best guesses for a message."""
    return any(
        str(i.get("name") or "").startswith(DISCLOSURE_PREFIX)
        and float(i.get("confidence") or 0) >= DISCLOSURE_FLOOR
        for i in _guesses(intent_ranking, 3)
    )

"""Deciding whether a message the assistant did not understand might still mean danger."""

from __future__ import annotations

from typing import Any

from actions.disclosure import RISK_INTENT

FALLBACK_INTENT = "nlu_fallback"
# A message the classifier is unsure about, where danger is still one of its two best guesses, gets
# the crisis numbers rather than only "sorry, I didn't get that".
RISK_FLOOR = 0.15


def looks_like_risk(intent_ranking: list[dict[str, Any]]) -> bool:
    """Return True when risk_immediate is one of the two best guesses for a message."""
    ranked = [i for i in intent_ranking if i.get("name") != FALLBACK_INTENT][:2]
    return any(i.get("name") == RISK_INTENT and float(i.get("confidence") or 0) >= RISK_FLOOR for i in ranked)

"""A small tracker factory for action tests, as HOUSE_STYLE.md asks."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker


def make_tracker(
    *,
    slots: dict[str, Any] | None = None,
    intent: str | None = None,
    text: str = "",
    entities: list[dict[str, Any]] | None = None,
    intent_ranking: list[dict[str, Any]] | None = None,
    sender_id: str = "a1b2c3",
) -> Tracker:
    """Return a tracker whose latest message has the given intent, text and entities."""
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9} if intent else {},
        "entities": entities or [],
        "intent_ranking": intent_ranking or [],
    }
    return Tracker(
        sender_id=sender_id,
        slots=dict(slots or {}),
        latest_message=latest,
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )

"""Slots filled from every user message, read by the conditional responses in domain.yml."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import ValidationAction
from rasa_sdk.types import DomainDict

from actions.disclosure import (
    AGE_GROUPS,
    age_group_from_text,
    disclosure_from_intent,
    is_about_someone_else,
)
from actions.fallback import FALLBACK_INTENT, looks_like_risk
from actions.worker import worker_topic_from_intent


def _text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "")


def _intent(tracker: Tracker) -> str | None:
    """Return the latest message's intent as classified, nlu_fallback included."""
    intent = tracker.latest_message.get("intent") or {}
    return intent.get("name")


class ValidateSlotMappings(ValidationAction):
    """Fills the custom slots after each message (rasa-sdk's action_validate_slot_mappings)."""

    def extract_about_someone_else(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A disclosure about a friend is answered with advice for helping them."""
        if disclosure_from_intent(_intent(tracker)) is None:
            return {}
        return {"about_someone_else": is_about_someone_else(_text(tracker))}

    def extract_age_group(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Once the person gives their age, the services shown fit it."""
        if _intent(tracker) != "inform_age":
            return {}
        from_button = next(tracker.get_latest_entity_values("age_group"), None)
        age_group = from_button if from_button in AGE_GROUPS else age_group_from_text(_text(tracker))
        return {"age_group": age_group} if age_group else {}

    def extract_disclosure(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A later request for a person carries what was disclosed, so the case gets its priority."""
        disclosure = disclosure_from_intent(_intent(tracker))
        return {"disclosure": disclosure} if disclosure else {}

    def extract_may_be_risk(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A disclosure that may also mean danger ends with the crisis numbers and a safety check."""
        if disclosure_from_intent(_intent(tracker)) is None:
            return {"may_be_risk": False}
        ranking = tracker.latest_message.get("intent_ranking") or []
        return {"may_be_risk": looks_like_risk(ranking)}

    def extract_unclear_may_be_risk(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """An unclear message that may mean danger is answered with the crisis numbers."""
        if _intent(tracker) != FALLBACK_INTENT:
            return {"unclear_may_be_risk": False}
        ranking = tracker.latest_message.get("intent_ranking") or []
        return {"unclear_may_be_risk": looks_like_risk(ranking)}

    def extract_worker_topic(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A worker question asked before the role check is remembered, to answer after it."""
        topic = worker_topic_from_intent(_intent(tracker))
        return {"worker_topic": topic} if topic else {}

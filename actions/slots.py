"""Slots filled from the messages that need reading, read by the conditional responses in domain.yml.

Rasa calls `action_read_message` only for a message whose intent a slot's custom mapping in domain.yml
names (disclosures, `inform_age`, `nlu_fallback`, `out_of_scope`, worker questions), and at most once per
message. On every other message `may_be_risk`, `unclear_may_be_risk` and `unclear_may_be_disclosure` are
set back to false by the domain's
own `from_intent` mappings, without a call to the action server. tests/test_domain.py checks that the
domain's intent lists are the ones these functions fill slots on.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.disclosure import (
    AGE_GROUPS,
    age_group_from_text,
    disclosure_from_intent,
    is_about_someone_else,
)
from actions.fallback import UNCLEAR_INTENTS, looks_like_disclosure, looks_like_risk
from actions.worker import worker_topic_from_intent

AGE_INTENT = "inform_age"


def _text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "")


def _intent(tracker: Tracker) -> str | None:
    """Return the latest message's intent as classified, nlu_fallback included."""
    intent = tracker.latest_message.get("intent") or {}
    return intent.get("name")


def extract_about_someone_else(tracker: Tracker) -> dict[str, Any]:
    """A disclosure about a friend is answered with advice for helping them."""
    if disclosure_from_intent(_intent(tracker)) is None:
        return {}
    return {"about_someone_else": is_about_someone_else(_text(tracker))}


def extract_age_group(tracker: Tracker) -> dict[str, Any]:
    """Once the person gives their age, the services shown fit it."""
    if _intent(tracker) != AGE_INTENT:
        return {}
    from_button = next(tracker.get_latest_entity_values("age_group"), None)
    age_group = from_button if from_button in AGE_GROUPS else age_group_from_text(_text(tracker))
    return {"age_group": age_group} if age_group else {}


def extract_disclosure(tracker: Tracker) -> dict[str, Any]:
    """A later request for a person carries what was disclosed, so the case gets its priority."""
    disclosure = disclosure_from_intent(_intent(tracker))
    return {"disclosure": disclosure} if disclosure else {}


def extract_may_be_risk(tracker: Tracker) -> dict[str, Any]:
    """A disclosure that may also mean danger ends with the crisis numbers and a safety check."""
    if disclosure_from_intent(_intent(tracker)) is None:
        return {}
    ranking = tracker.latest_message.get("intent_ranking") or []
    return {"may_be_risk": looks_like_risk(ranking)}


def extract_unclear_may_be_risk(tracker: Tracker) -> dict[str, Any]:
    """An unclear message that may mean danger is answered with the crisis numbers."""
    if _intent(tracker) not in UNCLEAR_INTENTS:
        return {}
    ranking = tracker.latest_message.get("intent_ranking") or []
    return {"unclear_may_be_risk": looks_like_risk(ranking)}


def extract_unclear_may_be_disclosure(tracker: Tracker) -> dict[str, Any]:
    """An unclear message that may be a disclosure gets a gentle check, with the harms as buttons."""
    if _intent(tracker) not in UNCLEAR_INTENTS:
        return {}
    ranking = tracker.latest_message.get("intent_ranking") or []
    return {"unclear_may_be_disclosure": looks_like_disclosure(ranking)}


def extract_worker_topic(tracker: Tracker) -> dict[str, Any]:
    """A worker question asked before the role check is remembered, to answer after it."""
    topic = worker_topic_from_intent(_intent(tracker))
    return {"worker_topic": topic} if topic else {}


EXTRACTORS = (
    extract_about_someone_else,
    extract_age_group,
    extract_disclosure,
    extract_may_be_risk,
    extract_unclear_may_be_disclosure,
    extract_unclear_may_be_risk,
    extract_worker_topic,
)


class ActionReadMessage(Action):
    """Fills the custom slots from a message (the slots' custom mappings in domain.yml name it)."""

    def name(self) -> str:
        return "action_read_message"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """Return a SlotSet for each slot the latest message fills, and nothing for the others."""
        values: dict[str, Any] = {}
        for extract in EXTRACTORS:
            values.update(extract(tracker))
        return [SlotSet(slot, value) for slot, value in values.items()]

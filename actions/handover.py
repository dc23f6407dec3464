"""Handing a conversation to a person: Rasa decides that one is wanted; the adapter runs the case.

The reply carries a custom payload `{"handover": {"priority": ..., "reason": ...}}` that the Telegram
adapter acts on (see README, "Handover signal").
"""

from __future__ import annotations

from dataclasses import dataclass

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.disclosure import RISK_INTENT

PRIORITY_RANK = {"normal": 1, "high": 2, "urgent": 3}


@dataclass(frozen=True)
class Handover:
    """What the adapter needs to open a case."""

    priority: str
    reason: str

    def payload(self) -> dict[str, dict[str, str]]:
        """Return the custom payload the adapter reads."""
        return {"handover": {"priority": self.priority, "reason": self.reason}}


def decide_handover(disclosure: str | None) -> Handover:
    """Return the priority and reason for a handover, from the most recent disclosure if any."""
    if disclosure == RISK_INTENT:
        return Handover("urgent", RISK_INTENT)
    if disclosure:
        return Handover("high", disclosure)
    return Handover("normal", "request_human")


def is_raise(new: Handover, current_priority: str | None) -> bool:
    """Return True if the new handover is more urgent than the one already asked for."""
    return PRIORITY_RANK[new.priority] > PRIORITY_RANK.get(current_priority or "", 0)


class ActionRequestHandover(Action):
    """Signals the adapter that a person is wanted; `utter_handover` then tells the person."""

    def name(self) -> str:
        return "action_request_handover"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The adapter opens a case, unless one at this priority or higher was already asked for."""
        handover = decide_handover(tracker.get_slot("disclosure"))
        if not is_raise(handover, tracker.get_slot("handover_priority")):
            return [SlotSet("handover_status", "already")]
        dispatcher.utter_message(json_message=handover.payload())
        return [
            SlotSet("handover_priority", handover.priority),
            SlotSet("handover_status", "requested"),
        ]

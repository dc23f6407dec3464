"""Handing a conversation to a person: Rasa decides that one is wanted; the adapter runs the case.

The reply carries the handover signal (actions/handover_signal.py), a custom payload
`{"handover": {"priority": ..., "reason": ...}}` that the adapter acts on (see README, "Handover signal").
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.disclosure import RISK_INTENT
from actions.handover_signal import HandoverRequest, Priority, raises_priority

# The action's name for the request; one definition with the adapter's (actions/handover_signal.py).
Handover = HandoverRequest


def decide_handover(disclosure: str | None) -> Handover:
    """Return the priority and reason for a handover, from the most recent disclosure if any."""
    if disclosure == RISK_INTENT:
        return Handover(Priority.URGENT, RISK_INTENT)
    if disclosure:
        return Handover(Priority.HIGH, disclosure)
    return Handover(Priority.NORMAL, "request_human")


def is_raise(new: Handover, current_priority: str | None) -> bool:
    """Return True if the new handover is more urgent than the one already asked for (slot value)."""
    known = {p.value for p in Priority}
    return raises_priority(new.priority, Priority(current_priority) if current_priority in known else None)


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
            SlotSet("handover_priority", handover.priority.value),
            SlotSet("handover_status", "requested"),
        ]

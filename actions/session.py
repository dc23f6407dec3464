"""The start of every conversation: a welcome that always shows 999 and Childline."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

# Slots worth keeping when a conversation goes quiet and starts again: the person's age group saves
# asking twice. Everything about what happened is left behind.
CARRIED_OVER_SLOTS = ("age_group",)


class ActionSessionStart(Action):
    """Starts a conversation with the welcome message and the crisis numbers."""

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The person sees who we are, 999 and Childline before anything else."""
        events: list[EventType] = [SessionStarted()]
        events.extend(carried_over_slots(tracker.current_slot_values()))
        dispatcher.utter_message(response="utter_welcome")
        events.append(ActionExecuted("action_listen"))
        return events


def carried_over_slots(slots: dict[str, Any]) -> list[EventType]:
    """Return SlotSet events for the slots a new session keeps."""
    return [SlotSet(name, slots[name]) for name in CARRIED_OVER_SLOTS if slots.get(name) is not None]

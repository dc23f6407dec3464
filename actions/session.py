"""The start of every conversation: a welcome that always shows 999 and Childline."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

# Slots worth keeping when a conversation goes quiet and starts again: the person's age group and
# whether they work with young people save asking twice. Everything about what happened is left behind.
CARRIED_OVER_SLOTS = ("age_group", "role")


class ActionSessionStart(Action):
    """Starts a conversation with the welcome message and the crisis numbers."""

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The person sees who we are, 999 and Childline before anything else."""
        if follows_quick_exit(tracker.events):
            # Leaving quickly ends on a neutral word. Ending here, before `action_listen`, leaves the
            # new session empty, so the person's next message starts one with the welcome.
            return [SessionStarted()]
        events: list[EventType] = [SessionStarted()]
        events.extend(carried_over_slots(tracker.current_slot_values()))
        dispatcher.utter_message(response="utter_welcome")
        events.append(ActionExecuted("action_listen"))
        return events


def follows_quick_exit(events: list[dict[str, Any]]) -> bool:
    """Return True when this session starts because the conversation was just reset (quick exit)."""
    for event in reversed(events):
        kind = event.get("event")
        if kind == "restart":
            return True
        if kind in ("user", "bot", "session_started"):
            return False
    return False


def carried_over_slots(slots: dict[str, Any]) -> list[EventType]:
    """Return SlotSet events for the slots a new session keeps."""
    return [SlotSet(name, slots[name]) for name in CARRIED_OVER_SLOTS if slots.get(name) is not None]

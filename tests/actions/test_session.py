import asyncio

from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.session import ActionSessionStart, follows_quick_exit
from tests.actions.helpers import make_tracker


def test_a_new_conversation_starts_with_the_welcome_and_keeps_only_the_age_group() -> None:
    tracker = make_tracker(slots={"age_group": "13_17", "disclosure": "disclose_grooming"})
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionSessionStart().run(dispatcher, tracker, {}))
    assert events[0] == SessionStarted()
    assert SlotSet("age_group", "13_17") in events
    assert not [e for e in events if e.get("name") == "disclosure"]
    assert events[-1] == ActionExecuted("action_listen")
    assert [m["response"] for m in dispatcher.messages] == ["utter_welcome"]


def test_after_leaving_quickly_the_new_session_starts_silently() -> None:
    events = [
        {"event": "user", "text": "/quick_exit"},
        {"event": "bot", "text": "Goodbye."},
        {"event": "action", "name": "action_restart"},
        {"event": "restart"},
    ]
    tracker = make_tracker()
    tracker.events = events
    dispatcher = CollectingDispatcher()
    assert asyncio.run(ActionSessionStart().run(dispatcher, tracker, {})) == [SessionStarted()]
    assert dispatcher.messages == []


def test_the_next_message_after_leaving_quickly_gets_the_welcome_again() -> None:
    assert not follows_quick_exit(
        [
            {"event": "restart"},
            {"event": "action", "name": "action_session_start"},
            {"event": "session_started"},
        ]
    )
    assert not follows_quick_exit([])

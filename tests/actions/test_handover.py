import asyncio

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.handover import ActionRequestHandover, Handover, decide_handover, is_raise
from tests.actions.helpers import make_tracker


@pytest.mark.parametrize(
    ("disclosure", "expected"),
    [
        ("risk_immediate", Handover("urgent", "risk_immediate")),
        ("disclose_grooming", Handover("high", "disclose_grooming")),
        (None, Handover("normal", "request_human")),
    ],
)
def test_priority_follows_what_was_disclosed(disclosure: str | None, expected: Handover) -> None:
    assert decide_handover(disclosure) == expected


def test_only_a_more_urgent_handover_is_signalled_again() -> None:
    assert is_raise(Handover("urgent", "risk_immediate"), "high")
    assert not is_raise(Handover("high", "disclose_grooming"), "high")
    assert not is_raise(Handover("normal", "request_human"), "urgent")
    assert is_raise(Handover("normal", "request_human"), None)


def run(tracker) -> tuple[list, CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionRequestHandover().run(dispatcher, tracker, {}))
    return events, dispatcher


def test_a_disclosure_then_yes_sends_a_high_priority_handover_payload() -> None:
    events, dispatcher = run(make_tracker(intent="affirm", slots={"disclosure": "disclose_sextortion"}))
    assert dispatcher.messages[0]["custom"] == {
        "handover": {"priority": "high", "reason": "disclose_sextortion"}
    }
    assert SlotSet("handover_priority", "high") in events
    assert SlotSet("handover_status", "requested") in events


def test_asking_twice_does_not_open_a_second_case() -> None:
    events, dispatcher = run(make_tracker(intent="request_human", slots={"handover_priority": "normal"}))
    assert dispatcher.messages == []
    assert events == [SlotSet("handover_status", "already")]


def test_danger_after_a_normal_request_raises_it_to_urgent() -> None:
    tracker = make_tracker(
        intent="risk_immediate",
        slots={"handover_priority": "normal", "disclosure": "risk_immediate"},
    )
    events, dispatcher = run(tracker)
    assert dispatcher.messages[0]["custom"]["handover"]["priority"] == "urgent"
    assert SlotSet("handover_priority", "urgent") in events

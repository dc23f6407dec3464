import asyncio

from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.slots import ValidateSlotMappings
from tests.actions.helpers import make_tracker

DOMAIN = {
    "slots": {
        name: {"type": "any", "mappings": [{"type": "custom"}]}
        for name in ("about_someone_else", "age_group", "disclosure", "unclear_may_be_risk")
    }
}


def run(tracker) -> tuple[list, CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ValidateSlotMappings().run(dispatcher, tracker, DOMAIN))
    return events, dispatcher


def test_a_disclosure_about_a_friend_fills_the_friend_and_disclosure_slots() -> None:
    events, dispatcher = run(
        make_tracker(intent="disclose_sextortion", text="my friend is being blackmailed with pics")
    )
    assert SlotSet("about_someone_else", True) in events
    assert SlotSet("disclosure", "disclose_sextortion") in events
    assert dispatcher.messages == []


def test_a_first_person_disclosure_is_not_about_someone_else() -> None:
    events, _ = run(make_tracker(intent="disclose_image_shared", text="he posted my nudes"))
    assert SlotSet("about_someone_else", False) in events


def test_ordinary_messages_leave_the_disclosure_alone() -> None:
    events, _ = run(make_tracker(intent="thanks", text="thanks", slots={"disclosure": "x"}))
    assert not [e for e in events if e["name"] in ("disclosure", "about_someone_else")]


def test_an_age_button_sets_the_age_group() -> None:
    tracker = make_tracker(
        intent="inform_age",
        text='/inform_age{"age_group": "18_plus"}',
        entities=[{"entity": "age_group", "value": "18_plus"}],
    )
    events, _ = run(tracker)
    assert SlotSet("age_group", "18_plus") in events


def test_a_typed_age_sets_the_age_group() -> None:
    events, _ = run(make_tracker(intent="inform_age", text="im 15"))
    assert SlotSet("age_group", "13_17") in events


def test_a_forged_age_button_value_falls_back_to_the_text() -> None:
    tracker = make_tracker(
        intent="inform_age", text="i'm 12", entities=[{"entity": "age_group", "value": "999"}]
    )
    events, _ = run(tracker)
    assert SlotSet("age_group", "under_13") in events


def test_an_unclear_message_near_risk_is_flagged() -> None:
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.35},
        {"name": "out_of_scope", "confidence": 0.3},
        {"name": "risk_immediate", "confidence": 0.25},
    ]
    events, _ = run(make_tracker(intent="nlu_fallback", text="idk anymore", intent_ranking=ranking))
    assert SlotSet("unclear_may_be_risk", True) in events


def test_a_clear_message_is_not_flagged_as_unclear_risk() -> None:
    events, _ = run(make_tracker(intent="greet", text="hi"))
    assert SlotSet("unclear_may_be_risk", False) in events


def test_a_disclosure_with_danger_as_second_guess_is_flagged() -> None:
    ranking = [
        {"name": "disclose_cyberbullying", "confidence": 0.6},
        {"name": "risk_immediate", "confidence": 0.3},
    ]
    tracker = make_tracker(intent="disclose_cyberbullying", text="...", intent_ranking=ranking)
    domain = {"slots": {"may_be_risk": {"type": "bool", "mappings": [{"type": "custom"}]}}}
    events = asyncio.run(ValidateSlotMappings().run(CollectingDispatcher(), tracker, domain))
    assert SlotSet("may_be_risk", True) in events


def test_a_clear_disclosure_is_not_flagged_as_danger() -> None:
    ranking = [
        {"name": "disclose_cyberbullying", "confidence": 0.9},
        {"name": "disclose_harassment", "confidence": 0.05},
        {"name": "risk_immediate", "confidence": 0.02},
    ]
    tracker = make_tracker(intent="disclose_cyberbullying", text="...", intent_ranking=ranking)
    domain = {"slots": {"may_be_risk": {"type": "bool", "mappings": [{"type": "custom"}]}}}
    events = asyncio.run(ValidateSlotMappings().run(CollectingDispatcher(), tracker, domain))
    assert SlotSet("may_be_risk", False) in events

import asyncio

from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.slots import ActionReadMessage
from tests.actions.helpers import make_tracker

# Rasa calls the action only for the intents the slots' custom mappings name in domain.yml; on other
# messages the domain sets may_be_risk and unclear_may_be_risk to false itself (tests/test_domain.py).
DOMAIN = {"slots": {}}


def run(tracker) -> tuple[list, CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionReadMessage().run(dispatcher, tracker, DOMAIN))
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


def test_danger_now_is_a_disclosure() -> None:
    events, _ = run(make_tracker(intent="risk_immediate", text="i want to end it"))
    assert SlotSet("disclosure", "risk_immediate") in events


def test_a_disclosure_fills_only_its_own_slots() -> None:
    events, _ = run(make_tracker(intent="disclose_grooming", text="an older guy wants to meet me"))
    assert sorted(e["name"] for e in events) == ["about_someone_else", "disclosure", "may_be_risk"]


def test_ordinary_messages_leave_the_disclosure_alone() -> None:
    events, _ = run(make_tracker(intent="thanks", text="thanks", slots={"disclosure": "x"}))
    assert events == []


def test_an_age_button_sets_the_age_group() -> None:
    tracker = make_tracker(
        intent="inform_age",
        text='/inform_age{"age_group": "18_plus"}',
        entities=[{"entity": "age_group", "value": "18_plus"}],
    )
    events, _ = run(tracker)
    assert events == [SlotSet("age_group", "18_plus")]


def test_a_typed_age_sets_the_age_group() -> None:
    events, _ = run(make_tracker(intent="inform_age", text="im 15"))
    assert SlotSet("age_group", "13_17") in events


def test_a_forged_age_button_value_falls_back_to_the_text() -> None:
    tracker = make_tracker(
        intent="inform_age", text="i'm 12", entities=[{"entity": "age_group", "value": "999"}]
    )
    events, _ = run(tracker)
    assert SlotSet("age_group", "under_13") in events


def test_an_age_message_without_an_age_leaves_the_age_group_alone() -> None:
    events, _ = run(make_tracker(intent="inform_age", text="old enough", slots={"age_group": "13_17"}))
    assert events == []


def test_an_unclear_message_near_risk_is_flagged() -> None:
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.35},
        {"name": "out_of_scope", "confidence": 0.3},
        {"name": "risk_immediate", "confidence": 0.25},
    ]
    events, _ = run(make_tracker(intent="nlu_fallback", text="idk anymore", intent_ranking=ranking))
    assert events == [SlotSet("unclear_may_be_disclosure", False), SlotSet("unclear_may_be_risk", True)]


def test_an_unclear_message_far_from_risk_is_not_flagged() -> None:
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.35},
        {"name": "out_of_scope", "confidence": 0.3},
        {"name": "greet", "confidence": 0.25},
        {"name": "risk_immediate", "confidence": 0.1},
    ]
    events, _ = run(make_tracker(intent="nlu_fallback", text="banana", intent_ranking=ranking))
    assert events == [SlotSet("unclear_may_be_disclosure", False), SlotSet("unclear_may_be_risk", False)]


def test_an_out_of_scope_message_near_a_disclosure_gets_the_gentle_check() -> None:
    ranking = [
        {"name": "out_of_scope", "confidence": 0.5},
        {"name": "disclose_grooming", "confidence": 0.3},
        {"name": "greet", "confidence": 0.2},
    ]
    tracker = make_tracker(
        intent="out_of_scope", text="he wants to meet me this weekend", intent_ranking=ranking
    )
    events, _ = run(tracker)
    assert events == [SlotSet("unclear_may_be_disclosure", True), SlotSet("unclear_may_be_risk", False)]


def test_a_clear_message_is_not_read_for_unclear_risk() -> None:
    """Rasa sets unclear_may_be_risk to false on it (domain.yml); the action leaves it alone."""
    events, _ = run(make_tracker(intent="greet", text="hi"))
    assert events == []


def test_a_disclosure_with_danger_as_second_guess_is_flagged() -> None:
    ranking = [
        {"name": "disclose_cyberbullying", "confidence": 0.6},
        {"name": "risk_immediate", "confidence": 0.3},
    ]
    tracker = make_tracker(intent="disclose_cyberbullying", text="...", intent_ranking=ranking)
    events, _ = run(tracker)
    assert SlotSet("may_be_risk", True) in events


def test_a_clear_disclosure_is_not_flagged_as_danger() -> None:
    ranking = [
        {"name": "disclose_cyberbullying", "confidence": 0.9},
        {"name": "disclose_harassment", "confidence": 0.05},
        {"name": "risk_immediate", "confidence": 0.02},
    ]
    tracker = make_tracker(intent="disclose_cyberbullying", text="...", intent_ranking=ranking)
    events, _ = run(tracker)
    assert SlotSet("may_be_risk", False) in events

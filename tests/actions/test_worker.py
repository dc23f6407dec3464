import asyncio

from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.slots import ActionReadMessage
from actions.worker import (
    ActionAnswerWorkerTopic,
    answer_response,
    nation_slot,
    worker_topic_from_intent,
)
from tests.actions.helpers import make_tracker

DOMAIN = {"responses": {"utter_worker_ceop_reporting": [{"text": "..."}]}}


def test_only_worker_intents_are_worker_topics() -> None:
    assert worker_topic_from_intent("worker_ceop_reporting") == "worker_ceop_reporting"
    assert worker_topic_from_intent("disclose_grooming") is None
    assert worker_topic_from_intent(None) is None


def test_a_topic_without_an_answer_in_the_domain_gets_none() -> None:
    assert answer_response("worker_ceop_reporting", DOMAIN) == "utter_worker_ceop_reporting"
    assert answer_response("worker_made_up", DOMAIN) is None


KNOWN = {"worker_nation": "wales"}


def test_the_nation_is_asked_once_and_the_question_waits_for_it() -> None:
    tracker = make_tracker(intent="inform_role_worker", slots={"worker_topic": "worker_ceop_reporting"})
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionAnswerWorkerTopic().run(dispatcher, tracker, DOMAIN))
    assert [m["response"] for m in dispatcher.messages] == ["utter_ask_worker_nation"]
    assert events == [SlotSet("worker_nation_asked", True)]  # worker_topic is kept for the answer


def test_asked_and_not_said_the_question_is_answered_with_englands_steps() -> None:
    slots = {"worker_topic": "worker_ceop_reporting", "worker_nation_asked": True}
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionAnswerWorkerTopic().run(dispatcher, make_tracker(slots=slots), DOMAIN))
    assert [m["response"] for m in dispatcher.messages] == ["utter_worker_ceop_reporting"]
    assert events == [SlotSet("worker_topic", None)]


def test_the_place_tables_nations_are_the_slots_values() -> None:
    assert [nation_slot(n) for n in ("England", "Wales", "Scotland", "Northern Ireland")] == [
        "england",
        "wales",
        "scotland",
        "northern_ireland",
    ]
    assert nation_slot("Isle of Man") is None


def test_after_the_role_check_the_pending_question_is_answered_once() -> None:
    tracker = make_tracker(intent="inform_nation", slots={"worker_topic": "worker_ceop_reporting", **KNOWN})
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionAnswerWorkerTopic().run(dispatcher, tracker, DOMAIN))
    assert [m["response"] for m in dispatcher.messages] == ["utter_worker_ceop_reporting"]
    assert events == [SlotSet("worker_topic", None)]


def test_with_no_pending_question_nothing_is_said() -> None:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionAnswerWorkerTopic().run(dispatcher, make_tracker(slots=KNOWN), DOMAIN))
    assert dispatcher.messages == [] and events == []


def test_a_worker_question_is_remembered_for_after_the_role_check() -> None:
    tracker = make_tracker(intent="worker_searching_devices", text="can i search a pupils phone")
    events = asyncio.run(ActionReadMessage().run(CollectingDispatcher(), tracker, DOMAIN))
    assert events == [SlotSet("worker_topic", "worker_searching_devices")]

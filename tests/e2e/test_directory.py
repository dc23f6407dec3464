"""Finding help through the real Rasa server, action server and seeded database."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Assistant, new_sender, texts

pytestmark = pytest.mark.e2e


def test_someone_in_leeds_asking_for_help_gets_leeds_services_then_national_ones(
    assistant: Assistant,
) -> None:
    sender = new_sender()
    asked = texts(assistant.say(sender, "I need help, I'm in Leeds"))
    assert "What kind of help are you looking for?" in asked
    listed = texts(assistant.say(sender, '/find_services{"service_need": "any"}'))
    assert "Here is help near you, in Leeds" in listed
    assert "MindMate (Leeds)" in listed and "Childline" in listed and "Last checked" in listed


def test_someone_can_skip_saying_where_they_are(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "is there any help near me")
    where = texts(assistant.say(sender, '/find_services{"service_need": "image_removal"}'))
    assert "Where are you?" in where
    listed = texts(assistant.say(sender, "/deny"))
    assert "These free services can help" in listed and "Report Remove" in listed


def test_danger_while_we_ask_where_gets_the_crisis_answer_not_the_form(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "is there any help near me")
    assistant.say(sender, '/find_services{"service_need": "any"}')
    reply = texts(assistant.say(sender, "/risk_immediate"))
    assert "999" in reply and "Where are you?" not in reply


def test_a_worker_asking_for_a_named_councils_front_door_gets_it(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "/inform_role_worker")
    reply = texts(assistant.say(sender, "what's the front door number for Oxfordshire"))
    assert "Children's services there are run by Oxfordshire" in reply
    assert "0345 050 7666" in reply
    other = texts(assistant.say(sender, "who do i call to make a referral in kent"))
    assert "run by Kent" in other and "gov.uk/report-child-abuse-to-local-council" in other

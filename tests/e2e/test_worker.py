"""A worker talks to the real Rasa server and action server: the role check, then procedure with sources."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Assistant, handovers, new_sender, texts

pytestmark = pytest.mark.e2e


POLICY = "Check your setting's current child-protection policy, and follow local procedures."
ASK_NATION = "Which part of the UK do you work in?"


def test_a_worker_question_before_the_role_is_known_is_checked_then_answered_for_their_nation(
    assistant: Assistant,
) -> None:
    sender = new_sender()
    asked = texts(assistant.say(sender, "/worker_searching_devices"))
    assert (
        "Is this about you or someone you know, or are you asking because you work with young people?"
        in asked
    )
    noted = texts(assistant.say(sender, "/inform_role_worker"))
    assert ASK_NATION in noted and "Source:" not in noted  # the question waits for the nation
    answered = texts(assistant.say(sender, '/inform_nation{"nation": "wales"}'))
    assert "works with young people in Wales" in answered
    assert "knife or other weapon" in answered and "1 September 2022" not in answered  # not England's rules
    assert "These steps are for Wales." in answered
    assert "Source:" in answered and answered.rstrip().endswith(POLICY)


def test_the_nation_is_asked_once_and_england_is_said_when_the_worker_does_not_say(
    assistant: Assistant,
) -> None:
    sender = new_sender()
    assert ASK_NATION in texts(assistant.say(sender, "/inform_role_worker"))
    answered = texts(assistant.say(sender, "/worker_kcsie_duties"))
    assert ASK_NATION not in answered
    assert "These steps are for England." in answered and "KCSIE" in answered
    # Choosing later answers the last question again, for the nation chosen.
    again = texts(assistant.say(sender, '/inform_nation{"nation": "scotland"}'))
    assert "National Guidance for Child Protection in Scotland" in again
    assert "These steps are for Scotland." in again


def test_the_council_found_sets_the_workers_nation(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "/inform_role_worker")
    texts(assistant.say(sender, "what's the front door number for Cardiff"))
    answered = texts(assistant.say(sender, "/worker_referral_front_door"))
    assert "These steps are for Wales." in answered and "designated safeguarding person (DSP)" in answered
    assert "MASH" not in answered


def test_northern_ireland_gets_the_trusts_gateway_numbers(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "/inform_role_worker")
    reply = texts(assistant.say(sender, "what's the front door number for Belfast"))
    assert "Gateway" in reply and "028 9050 7000" in reply and "028 9504 9999" in reply
    answered = texts(assistant.say(sender, "/worker_staff_targeted_lado"))
    assert "These steps are for Northern Ireland." in answered and "Principal" in answered


def test_someone_who_says_it_is_about_them_gets_the_young_persons_path(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "/worker_ceop_reporting")
    reply = texts(assistant.say(sender, "/deny"))
    assert "Tell me what's going on" in reply
    assert "Source:" not in reply


def test_a_worker_describing_a_childs_disclosure_gets_procedure_not_the_young_persons_script(
    assistant: Assistant,
) -> None:
    sender = new_sender()
    assistant.say(sender, "/inform_role_worker")
    replies = assistant.say(sender, "/disclose_sextortion")
    reply = texts(replies)
    assert "designated safeguarding lead" in reply
    assert "Don't pay" not in reply
    assert handovers(replies) == []

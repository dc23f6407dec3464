"""A worker talks to the real Rasa server and action server: the role check, then procedure with sources."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Assistant, handovers, new_sender, texts

pytestmark = pytest.mark.e2e


def test_a_worker_question_before_the_role_is_known_is_checked_then_answered(assistant: Assistant) -> None:
    sender = new_sender()
    asked = texts(assistant.say(sender, "/worker_searching_devices"))
    assert (
        "Is this about you or someone you know, or are you asking because you work with young people?"
        in asked
    )
    answered = texts(assistant.say(sender, "/inform_role_worker"))
    assert "Source:" in answered
    assert answered.rstrip().endswith(
        "Check your setting's current child-protection policy, and follow local procedures."
    )


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

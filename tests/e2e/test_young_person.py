"""A young person talks to the real Rasa server and action server through Rasa's REST channel."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Assistant, handovers, new_sender, texts

pytestmark = pytest.mark.e2e


def test_first_message_shows_999_and_childline(assistant: Assistant) -> None:
    reply = texts(assistant.say(new_sender(), "hello"))
    assert "999" in reply and "0800 1111" in reply
    assert "safe to talk" in reply


def test_first_message_shows_999_and_childline_even_when_it_is_a_disclosure(
    assistant: Assistant,
) -> None:
    reply = texts(assistant.say(new_sender(), "someone keeps sending me horrible messages"))
    assert reply.index("999") < reply.index("I'm sorry")


def test_danger_now_gets_every_crisis_number_an_urgent_handover_and_a_safety_check(
    assistant: Assistant,
) -> None:
    replies = assistant.say(new_sender(), "i want to kill myself tonight")
    reply = texts(replies)
    for number in ("999", "0800 1111", "85258", "116 123"):
        assert number in reply
    assert handovers(replies) == [{"priority": "urgent", "reason": "risk_immediate"}]
    assert "Are you safe right now?" in reply
    assert "stays private" in reply


def test_sextortion_gets_steps_asks_age_then_report_remove_and_a_high_priority_person(
    assistant: Assistant,
) -> None:
    sender = new_sender()
    first = texts(
        assistant.say(sender, "a guy on insta says he will send my nudes to everyone unless i pay him")
    )
    assert "Don't pay" in first and "not your fault" in first
    assert "How old are you?" in first
    teen = texts(assistant.say(sender, '/inform_age{"age_group": "13_17"}'))
    assert "Report Remove" in teen and "childline.org.uk/remove" in teen
    assert "ceop.police.uk" in teen
    replies = assistant.say(sender, "/request_human")
    assert handovers(replies) == [{"priority": "high", "reason": "disclose_sextortion"}]
    assert "stays private" in texts(replies)


def test_an_adult_whose_image_was_shared_gets_adult_services(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "my ex posted my nudes on a group chat")
    adult = texts(assistant.say(sender, "im 19"))
    assert "Revenge Porn Helpline" in adult and "0345 6000 459" in adult
    assert "Report Remove" not in adult


def test_a_friend_worried_about_a_friend_gets_advice_for_helping_them(assistant: Assistant) -> None:
    reply = texts(assistant.say(new_sender(), "my friend is being bullied really badly on tiktok"))
    assert "look out for them" in reply
    assert "Childline" in reply


def test_asking_for_a_person_twice_opens_one_normal_case(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "hi")
    first = assistant.say(sender, "/request_human")
    assert handovers(first) == [{"priority": "normal", "reason": "request_human"}]
    second = assistant.say(sender, "/request_human")
    assert handovers(second) == []
    assert "already asked" in texts(second)


def test_leaving_quickly_ends_with_a_neutral_word(assistant: Assistant) -> None:
    sender = new_sender()
    assistant.say(sender, "hi")
    assert texts(assistant.say(sender, "/quick_exit")) == "Bye for now."
    # Coming back starts a new conversation, with the crisis numbers first.
    back = texts(assistant.say(sender, "hello"))
    assert "999" in back and "0800 1111" in back


def test_asking_if_this_is_a_person_gets_an_honest_answer_and_an_offer(
    assistant: Assistant,
) -> None:
    reply = texts(assistant.say(new_sender(), "are you a real person"))
    assert "not a person" in reply


def test_grooming_points_to_ceop_and_a_trusted_adult(assistant: Assistant) -> None:
    reply = texts(
        assistant.say(
            new_sender(),
            "theres this guy on roblox whos 24 and he keeps sending me robux and says i cant tell my mum",
        )
    )
    assert "ceop.police.uk" in reply and "adult you trust" in reply


def test_someone_low_but_not_in_danger_gets_warmth_childline_and_a_normal_priority_person(
    assistant: Assistant,
) -> None:
    sender = new_sender()
    assistant.say(sender, "hi")
    replies = assistant.say(sender, "/distress")
    reply = texts(replies)
    assert "It's OK not to be OK" in reply and "0800 1111" in reply
    assert "Would you like to talk to a real person" in reply
    assert handovers(replies) == []
    taken = assistant.say(sender, "/request_human")
    assert handovers(taken) == [{"priority": "normal", "reason": "request_human"}]

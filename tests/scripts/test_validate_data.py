"""The validator wrapper fails on warnings, except responses that only our actions or forms say."""

from __future__ import annotations

from scripts.validate_data import button_intents, problems, said_by_code

OUTPUT = """
UserWarning: The utterance 'directory_open_now' is not used in any story or rule.
UserWarning: The utterance 'utter_forgotten' is not used in any story or rule.
UserWarning: The intent 'greet' is not used in any story or rule.
"""


def test_only_the_accepted_false_alarm_is_ignored() -> None:
    assert problems(OUTPUT, {"directory_open_now"}) == [
        "The utterance 'utter_forgotten' is not used in any story or rule.",
        "The intent 'greet' is not used in any story or rule.",
    ]


def test_responses_said_by_actions_and_form_questions_are_known() -> None:
    known = said_by_code()
    assert {"directory_services_local", "directory_open_now", "utter_ask_location"} <= known
    assert "utter_greet" not in known


def test_an_intent_only_our_buttons_send_may_have_no_nlu_examples() -> None:
    output = (
        "UserWarning: The intent 'inform_nation' is listed in the domain file, but is not found in the NLU "
        "training data.\n"
        "UserWarning: The intent 'greet' is listed in the domain file, but is not found in the NLU "
        "training data.\n"
    )
    assert button_intents() >= {"inform_nation", "inform_role_worker", "quick_exit"}
    assert problems(output, set(), button_intents() - {"greet"}) == [
        "The intent 'greet' is listed in the domain file, but is not found in the NLU training data."
    ]

"""What young people read: the facts are sourced, the crisis numbers are where they must be, and the
wording stays plain (DESIGN.md non-negotiables 1 and 4)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
import yaml
from rasa_sdk.executor import CollectingDispatcher

from actions.disclosure import disclosure_from_intent
from actions.fallback import FALLBACK_INTENT, UNCLEAR_INTENTS
from actions.slots import AGE_INTENT, ActionReadMessage
from actions.worker import worker_topic_from_intent
from bot.responses import button_payloads
from tests.actions.helpers import make_tracker

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
SOURCES = (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")
RESPONSES: dict[str, list[dict]] = DOMAIN["responses"]
CRISIS = ("999", "0800 1111", "85258", "116 123")
POLICY_LINE = "Check your setting's current child-protection policy, and follow local procedures."

# Phone numbers and short codes as written for people: "0800 1111", "116 123", "85258", "999".
PHONE = re.compile(r"(?<![\d£])(?:0\d{3} ?\d{3,4} ?\d{0,4}|\d{3} \d{3}|\d{5}|999|101)(?![\d%])")
WEB = re.compile(r"\b[a-z0-9.-]+\.(?:org\.uk|police\.uk|org|gov\.uk)(?:/[a-z0-9/-]*)?", re.IGNORECASE)


def all_texts() -> list[tuple[str, str]]:
    return [(name, v["text"]) for name, variants in RESPONSES.items() for v in variants]


def test_every_phone_number_we_show_is_in_the_sources() -> None:
    shown = {m.group(0).strip() for _, text in all_texts() for m in PHONE.finditer(text)}
    assert shown >= {"999", "0800 1111", "85258", "116 123", "101", "0345 6000 459"}
    missing = sorted(n for n in shown if n not in SOURCES)
    assert not missing, f"numbers shown to users but not in docs/sources.md: {missing}"


def test_every_web_address_we_show_is_in_the_sources() -> None:
    shown = {m.group(0).lower() for _, text in all_texts() for m in WEB.finditer(text)}
    assert shown
    missing = sorted(u for u in shown if u not in SOURCES.lower())
    assert not missing, f"addresses shown to users but not in docs/sources.md: {missing}"


def test_the_first_message_shows_999_and_childline() -> None:
    (welcome,) = RESPONSES["utter_welcome"]
    assert "999" in welcome["text"] and "0800 1111" in welcome["text"]


@pytest.mark.parametrize("name", ["utter_risk_immediate", "utter_crisis_numbers"])
def test_danger_answers_carry_every_crisis_number(name: str) -> None:
    for variant in RESPONSES[name]:
        for number in CRISIS:
            assert number in variant["text"], (name, number)


def _when(variant: dict) -> dict[str, object]:
    return {c["name"]: c["value"] for c in variant.get("condition") or []}


@pytest.mark.parametrize("name", ["utter_default", "utter_out_of_scope"])
def test_an_unclear_message_that_may_be_danger_gets_every_crisis_number(name: str) -> None:
    (risky,) = [v for v in RESPONSES[name] if _when(v).get("unclear_may_be_risk") is True]
    assert all(number in risky["text"] for number in CRISIS)


@pytest.mark.parametrize("name", ["utter_default", "utter_out_of_scope"])
def test_an_unclear_message_that_may_be_a_disclosure_gets_a_gentle_check_with_every_harm(name: str) -> None:
    """Only when danger is not among the guesses: the crisis answer comes first (issue 13)."""
    (gentle,) = [v for v in RESPONSES[name] if _when(v).get("unclear_may_be_disclosure") is True]
    assert _when(gentle)["unclear_may_be_risk"] is False
    assert "something may have happened" in gentle["text"]
    payloads = {b["payload"] for b in gentle["buttons"]}
    assert {f"/{i}" for i in INTENTS if i.startswith("disclose_")} <= payloads


def _leave_quickly(variant: dict) -> bool:
    return {"title": "Leave quickly", "payload": "/quick_exit"} in variant.get("buttons", [])


def test_every_screen_that_mentions_danger_has_the_leave_quickly_button() -> None:
    """Someone who may be watched needs the way out on the screen that talks about danger (issue 6)."""
    # A disclosure answer is always followed by utter_offer_help (stories/rules_disclosures.yml), which
    # carries the button; worker answers and the directory's lines are not for a young person in danger.
    # The web page's own words (utter_web_*) sit under its "Exit this page" button, on every page.
    followed = ("utter_disclose_", "utter_worker_", "directory_", "utter_web_")
    danger = [
        (name, index)
        for name, variants in RESPONSES.items()
        if not name.startswith(followed)
        for index, variant in enumerate(variants)
        if "999" in variant["text"]
    ]
    assert len(danger) >= 15
    assert [(n, i) for n, i in danger if not _leave_quickly(RESPONSES[n][i])] == []
    assert all(_leave_quickly(v) for v in RESPONSES["utter_offer_help"])
    rules = yaml.safe_load((ROOT / "stories" / "rules_disclosures.yml").read_text(encoding="utf-8"))
    for name in (n for n in RESPONSES if n.startswith("utter_disclose_")):
        (steps,) = [r["steps"] for r in rules["rules"] if {"action": name} in r["steps"]]
        assert steps[-1] == {"action": "utter_offer_help"}, name


@pytest.mark.parametrize("name", [n for n in RESPONSES if n.startswith("utter_disclose_")])
def test_every_disclosure_answer_believes_and_does_not_blame(name: str) -> None:
    for variant in RESPONSES[name]:
        text = variant["text"].lower()
        assert (
            "thank you for telling me" in text
            or "sorry" in text
            or "kind of you" in text
            or ("looking out" in text)
        ), variant
        if "about_someone_else" not in str(variant.get("condition")) or name.endswith("sextortion"):
            assert re.search(r"not (your|your friend's|their) fault|not to blame", text), variant


def test_every_worker_answer_gives_its_source_and_the_local_procedures_line() -> None:
    """Issue 15: every worker answer names its source and says, once, to check the setting's policy."""
    answers = {
        n: v for n, v in RESPONSES.items() if n.startswith("utter_worker_") and n != "utter_worker_role_noted"
    }
    assert len(answers) >= 15
    for name, variants in answers.items():
        for variant in variants:
            assert re.search(r"^Source: .+, (?:\d{4}|undated page).*, https?://\S+", variant["text"], re.M), (
                name
            )
            assert variant["text"].rstrip().endswith(POLICY_LINE), name
            assert variant["text"].count("Check your setting") == 1, name


def test_the_handover_message_makes_the_confidentiality_promise() -> None:
    (requested,) = [v for v in RESPONSES["utter_handover"] if not v.get("condition")]
    assert "stays private" in requested["text"]
    assert "seriously hurt" in requested["text"]


def syllables(word: str) -> int:
    """Count vowel groups, a standard rough syllable count for English."""
    word = word.lower()
    groups = re.findall(r"[aeiouy]+", word)
    count = len(groups) - (1 if word.endswith("e") and len(groups) > 1 else 0)
    return max(count, 1)


def test_wording_is_plain_enough_for_an_eleven_year_old() -> None:
    """Flesch-Kincaid grade of what young people read at most 6 (UK reading age about 11)."""
    young = [t for name, t in all_texts() if not name.startswith("utter_worker")]
    prose = [re.sub(r"\S+\.(?:uk|org)\S*|\d[\d ]*", "", t) for t in young]
    sentences = [s for t in prose for s in re.split(r"[.!?\n]+", t) if re.search(r"[a-zA-Z]", s)]
    words = [w for s in sentences for w in re.findall(r"[A-Za-z']+", s)]
    grade = 0.39 * len(words) / len(sentences) + 11.8 * sum(syllables(w) for w in words) / len(words) - 15.59
    assert grade <= 6.0, f"Flesch-Kincaid grade {grade:.1f}"


def test_responses_and_domain_lists_are_alphabetised() -> None:
    for key in ("intents", "entities", "actions"):
        names = [i if isinstance(i, str) else next(iter(i)) for i in DOMAIN[key]]
        assert names == sorted(names), key
    assert list(RESPONSES) == sorted(RESPONSES)
    assert list(DOMAIN["slots"]) == sorted(DOMAIN["slots"])


def test_every_number_and_address_in_the_seed_directory_is_in_the_sources() -> None:
    """The directory's seed services (data/directory/seed.json) are held to the same rule."""
    services = json.loads((ROOT / "data" / "directory" / "seed.json").read_text(encoding="utf-8"))
    numbers = {phone["number"] for service in services for phone in service["phones"]}
    urls = {s["url"].split("://", 1)[1].removeprefix("www.").rstrip("/") for s in services if "url" in s}
    assert numbers and urls
    assert (
        sorted(n for n in numbers if n not in SOURCES and n.replace(" ", "") not in SOURCES.replace(" ", ""))
        == []
    )
    assert sorted(u for u in urls if u.lower() not in SOURCES.lower()) == []
    for service in services:
        assert service["assured_date"], service["name"]
        items = re.findall(r"(?:item|items) ([\dW]+)|\b(W\d+)", service["x_signpost_source"])
        assert items, service["name"]
        for item, worker_item in items:
            heading = f"## {item or worker_item}."
            assert heading in SOURCES, (service["name"], heading)


# Rasa calls action_read_message only on the intents its slots' custom mappings name, and sets the
# danger flags to false on every other message itself (actions/slots.py). The lists come from the same
# functions the action uses, so a new disclose_* or worker_* intent cannot be missed.
INTENTS = [i if isinstance(i, str) else next(iter(i)) for i in DOMAIN["intents"]]
DISCLOSURES = [i for i in INTENTS if disclosure_from_intent(i)]
READ_ON = {
    "about_someone_else": DISCLOSURES,
    "age_group": [AGE_INTENT],
    "disclosure": DISCLOSURES,
    "may_be_risk": DISCLOSURES,
    "unclear_may_be_disclosure": list(UNCLEAR_INTENTS),
    "unclear_may_be_risk": list(UNCLEAR_INTENTS),
    "worker_topic": [i for i in INTENTS if worker_topic_from_intent(i)],
}
FALSE_UNLESS = {
    "may_be_risk": DISCLOSURES,
    "unclear_may_be_disclosure": list(UNCLEAR_INTENTS),
    "unclear_may_be_risk": list(UNCLEAR_INTENTS),
}


def test_the_intent_lists_cover_the_intents_they_should() -> None:
    assert "risk_immediate" in DISCLOSURES and len(DISCLOSURES) >= 7
    assert AGE_INTENT in INTENTS and FALLBACK_INTENT not in INTENTS
    assert len(READ_ON["worker_topic"]) >= 13


@pytest.mark.parametrize("slot", sorted(READ_ON))
def test_each_message_slot_is_read_only_on_the_intents_that_fill_it(slot: str) -> None:
    expected = [{"type": "custom", "action": "action_read_message", "intent": READ_ON[slot]}]
    if slot in FALSE_UNLESS:
        expected.append({"type": "from_intent", "value": False, "not_intent": FALSE_UNLESS[slot]})
    assert DOMAIN["slots"][slot]["mappings"] == expected


def test_only_the_message_slots_name_the_reading_action() -> None:
    naming = {
        slot
        for slot, spec in DOMAIN["slots"].items()
        for mapping in spec["mappings"]
        if mapping.get("action") == "action_read_message"
    }
    assert naming == set(READ_ON)
    assert "action_read_message" in DOMAIN["actions"]
    # Rasa 3.6 calls action_validate_slot_mappings on every message whenever the domain lists it.
    assert "action_validate_slot_mappings" not in DOMAIN["actions"]


@pytest.mark.parametrize("intent", [*INTENTS, FALLBACK_INTENT])
def test_the_action_fills_a_slot_only_on_an_intent_its_mapping_names(intent: str) -> None:
    """A message that could fill every slot: the slots filled are exactly those listing its intent."""
    tracker = make_tracker(
        intent=intent,
        text="my friend is being hurt, im 15",
        intent_ranking=[{"name": intent, "confidence": 0.6}, {"name": "risk_immediate", "confidence": 0.3}],
    )
    events = asyncio.run(ActionReadMessage().run(CollectingDispatcher(), tracker, {"slots": {}}))
    filled = sorted(event["name"] for event in events)
    assert filled == sorted(slot for slot, intents in READ_ON.items() if intent in intents)


def _variants(name: str, **when: object) -> list[str]:
    """The texts of a response's variants whose conditions include every slot value given."""
    return [v["text"] for v in RESPONSES[name] if all(_when(v).get(k) == val for k, val in when.items())]


def test_the_first_sextortion_reply_gives_a_reporting_route_and_childline_before_the_age_question() -> None:
    """Issue 15: someone being blackmailed may read only the first message, before we ask their age."""
    rules = yaml.safe_load((ROOT / "stories" / "rules_disclosures.yml").read_text(encoding="utf-8"))
    (steps,) = [r["steps"] for r in rules["rules"] if {"intent": "disclose_sextortion"} in r["steps"]]
    actions = [s["action"] for s in steps if "action" in s]
    assert actions.index("utter_disclose_sextortion") < actions.index("utter_removal_routes")
    young = [
        v["text"] for v in RESPONSES["utter_disclose_sextortion"] if _when(v).get("age_group") != "18_plus"
    ]
    assert len(young) == 2
    for text in young:
        for must in (
            "ceop.police.uk",
            "101",
            "999",
            "Childline",
            "0800 1111",
            "already paid, don't pay any more",
        ):
            assert must in text, (must, text)
        assert "fake or made with AI, it is still abuse" in text and "taken down" in text
    (adult,) = _variants("utter_disclose_sextortion", age_group="18_plus")
    assert "101" in adult and "999" in adult and "already paid" in adult and "ceop" not in adult.lower()


def test_screenshot_advice_never_reaches_a_nude_image() -> None:
    """Bullying and harassment advice says "take screenshots"; an intent read wrongly must not make it
    advice to screenshot a nude (issue 15), and the image answers never advise a screenshot."""
    advising = [
        (name, v["text"])
        for name, variants in RESPONSES.items()
        for v in variants
        if re.search(r"\b(?:take|save)\b[^.\n]*screenshots", v["text"], re.IGNORECASE)
    ]
    assert {name for name, _ in advising} == {"utter_disclose_cyberbullying", "utter_disclose_harassment"}
    for name, text in advising:
        assert "never screenshot a nude or sexual picture" in text, name
    (friend,) = _variants("utter_disclose_image_shared", about_someone_else=True)
    assert "Never screenshot it" in friend


def test_the_take_down_routes_say_what_happens_next() -> None:
    (under_13,) = _variants("utter_removal_routes", age_group="under_13")
    (teen,) = _variants("utter_removal_routes", age_group="13_17")
    (adult,) = _variants("utter_removal_routes", age_group="18_plus")
    assert "don't need to prove their age" in under_13 and "Yoti" not in under_13
    assert "Yoti" in teen
    for text in (under_13, teen):
        assert "Childline tells you what happened" in text
        assert "reads every report and will get in touch" in text
    assert "threatening to, is a crime" in adult and "England, Wales and Scotland" in adult


def test_worker_answers_carry_issue_15s_current_guidance() -> None:
    sextortion = RESPONSES["utter_worker_sextortion"][0]["text"]
    for must in (
        "self-harm and suicide",
        "Don't view the images",
        "Childline",
        "0800 1111",
        "of 29 April, 2024",
    ):
        assert must in sextortion, must
    lado = RESPONSES["utter_worker_staff_targeted_lado"][0]["text"]
    assert (
        "Don't investigate" in lado and "don't tell the staff member until you've spoken to the LADO" in lado
    )
    assert "straight away" in RESPONSES["utter_worker_child_disclosed"][0]["text"]
    assert "today" not in RESPONSES["utter_worker_child_disclosed"][0]["text"]
    assert "Not every case goes to the police" in RESPONSES["utter_worker_sharing_nudes_guidance"][0]["text"]
    assert (
        "Working Together to Safeguard Children (DfE), 2023"
        in RESPONSES["utter_worker_referral_front_door"][0]["text"]
    )
    kcsie = RESPONSES["utter_worker_kcsie_duties"][0]["text"]
    assert "2026 edition was consulted on" in kcsie and "edition in force now" in kcsie


def test_every_button_payload_fits_telegrams_callback_data() -> None:
    """Telegram's callback_data is 1-64 bytes: a longer payload (the nation buttons carry an entity)
    would make sending the whole message fail."""
    payloads = button_payloads()
    assert '/inform_nation{"nation": "northern_ireland"}' in payloads
    assert [p for p in payloads if not 1 <= len(p.encode("utf-8")) <= 64] == []

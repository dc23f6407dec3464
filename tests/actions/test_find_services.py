"""The directory's Rasa actions, run with rasa-sdk's dispatcher against a real (SQLite) database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import inspect

from actions.db import SchemaNotReadyError, check_schema, engine_for
from actions.find_services import (
    ActionFindFrontDoor,
    ActionFindServices,
    ValidateFindServicesForm,
    ValidateFrontDoorForm,
    need_from_answer,
)
from tests.actions.helpers import make_tracker

from .test_hsds import ROOT

DOMAIN: dict[str, Any] = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def run(action: Any, slots: dict[str, Any], **latest: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, make_tracker(slots=slots, **latest), DOMAIN))
    return dispatcher.messages, events


def test_the_action_never_migrates_on_a_request_and_says_what_to_run(fresh_url: str) -> None:
    """An empty database (nobody ran `make ready`): the person gets the crisis numbers, the log says what to
    run, and the request created nothing (migrations run before the action server starts, never here)."""
    messages, events = run(ActionFindServices(), {"location": "Leeds", "service_need": "any"})
    assert [m["response"] for m in messages] == ["utter_crisis_numbers"]
    assert events == [SlotSet("service_need", None)]
    assert (
        not Path(fresh_url.removeprefix("sqlite:///")).exists()
        or not inspect(engine_for(fresh_url)).get_table_names()
    )
    with pytest.raises(SchemaNotReadyError, match="make ready"):
        check_schema(fresh_url)


@pytest.mark.usefixtures("ready_url")
def test_help_in_leeds_lists_leeds_services_then_national_ones() -> None:
    messages, events = run(
        ActionFindServices(), {"location": "Leeds", "service_need": "any", "age_group": "13_17"}
    )
    (message,) = messages
    assert message["response"] == "directory_services_local" and message["place"] == "Leeds"
    assert "MindMate (Leeds)" in message["local"] and "Childline" in message["national"]
    assert events == [SlotSet("service_need", None)]


@pytest.mark.usefixtures("ready_url")
def test_a_place_with_no_local_services_still_gets_national_ones() -> None:
    messages, _ = run(ActionFindServices(), {"location": "kent", "service_need": "bullying"})
    assert [m["response"] for m in messages] == ["directory_services_no_local"]
    assert messages[0]["place"] == "Kent" and "Childline" in messages[0]["national"]


@pytest.mark.usefixtures("ready_url")
def test_skipping_the_place_gives_national_services() -> None:
    messages, _ = run(ActionFindServices(), {"location": "skip", "service_need": "image_removal"})
    assert [m["response"] for m in messages] == ["directory_services_national"]
    assert "Report Remove" in messages[0]["national"]


@pytest.mark.usefixtures("ready_url")
def test_northern_ireland_is_told_honestly_and_given_national_services() -> None:
    messages, _ = run(ActionFindServices(), {"location": "belfast", "service_need": "any"})
    assert [m["response"] for m in messages] == ["directory_services_northern_ireland"]


@pytest.mark.usefixtures("ready_url")
def test_a_guessed_place_is_said_to_be_a_guess() -> None:
    messages, _ = run(ActionFindServices(), {"location": "B36", "service_need": "any"})
    assert [m["response"] for m in messages] == ["directory_services_no_local", "directory_location_guessed"]


@pytest.mark.usefixtures("ready_url")
def test_a_worker_gets_the_front_door_of_a_named_council() -> None:
    messages, _ = run(ActionFindFrontDoor(), {"location": "Oxfordshire", "role": "worker"})
    (message,) = messages
    assert message["response"] == "directory_front_door_found" and message["council"] == "Oxfordshire"
    assert "0345 050 7666" in message["local"]


@pytest.mark.usefixtures("ready_url")
def test_a_council_without_a_listed_front_door_gets_the_gov_uk_route() -> None:
    messages, _ = run(ActionFindFrontDoor(), {"location": "Kent", "role": "worker"})
    assert [(m["response"], m["council"]) for m in messages] == [("directory_front_door_not_listed", "Kent")]


@pytest.mark.usefixtures("ready_url")
def test_a_front_door_question_without_a_place_asks_for_one() -> None:
    messages, _ = run(ActionFindFrontDoor(), {"role": "worker"})
    assert [m["response"] for m in messages] == ["utter_worker_find_front_door"]


def validate_location(
    form: Any, value: Any, text: str, intent: str = "inform_location"
) -> tuple[list[str], Any]:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(intent=intent, text=text, slots={"requested_slot": "location"})
    result = asyncio.run(form.validate_location(value, dispatcher, tracker, DOMAIN))
    return [m["response"] for m in dispatcher.messages], result["location"]


@pytest.mark.parametrize("form", [ValidateFindServicesForm(), ValidateFrontDoorForm()])
def test_where_answers_are_checked(form: Any) -> None:
    assert validate_location(form, "i live near banbury", "i live near banbury") == ([], "banbury")
    assert validate_location(form, "ls6 2ab", "ls6 2ab") == ([], "LS6 2AB")
    assert validate_location(form, "bramblewick", "bramblewick") == (["directory_location_unknown"], None)
    assert validate_location(form, "london", "london") == (["directory_location_region"], None)
    assert validate_location(form, "skip", "skip", intent="deny") == ([], "skip")


def extract_need(slots: dict[str, Any], text: str = "", intent: str | None = None) -> dict[str, Any]:
    tracker = make_tracker(slots=slots, text=text, intent=intent)
    return asyncio.run(
        ValidateFindServicesForm().extract_service_need(CollectingDispatcher(), tracker, DOMAIN)
    )


def test_someone_who_already_told_us_what_happened_is_not_asked_what_help() -> None:
    assert extract_need({"disclosure": "disclose_sextortion"}) == {"service_need": "sextortion"}
    assert extract_need({}) == {}


def test_a_typed_answer_to_what_help_is_understood() -> None:
    asked = {"requested_slot": "service_need"}
    assert extract_need(asked, "someone is bullying me", "disclose_cyberbullying") == {
        "service_need": "bullying"
    }
    assert extract_need(asked, "i just want to talk to someone") == {"service_need": "mental_health"}
    assert extract_need(asked, "not sure") == {"service_need": "any"}
    assert need_from_answer("get my nudes taken down", None) == "image_removal"

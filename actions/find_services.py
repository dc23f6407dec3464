"""Rasa actions for the directory: the form that asks what help and where, the service listing, and the
workers' front-door lookup. Thin: the work is in actions/services.py and actions/locate.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from functools import lru_cache
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.db import SchemaNotReadyError, check_schema, sessionmaker_for
from actions.locate import Located, NotLocated, gazetteer
from actions.models import NEEDS
from actions.services import Found, Wording, find_services, render_all
from actions.settings import get_settings
from actions.worker import nation_slot

logger = logging.getLogger(__name__)

ANY_NEED = "any"
SKIPPED = "skip"
SKIP_INTENTS = {"deny"}
# What a disclosure asks help for.
NEED_FROM_DISCLOSURE = {
    "disclose_sextortion": "sextortion",
    "disclose_image_shared": "image_removal",
    "disclose_grooming": "grooming",
    "disclose_cyberbullying": "bullying",
    "disclose_harassment": "harassment",
    "risk_immediate": "crisis",
}
# Words in a typed answer to "what kind of help?".
NEED_WORDS = (
    (r"blackmail|sextort|threat\w* to (share|post|leak)", "sextortion"),
    (r"nude|naked|pic|photo|image|video|take (it )?down|remove", "image_removal"),
    (r"groom|stranger|older (man|guy|person)|meet up", "grooming"),
    (r"bull(y|ied|ying)", "bullying"),
    (r"harass|stalk|won'?t leave me alone", "harassment"),
    (r"mental|anxi|depress|low|sad|stress|counsel|talk to someone", "mental_health"),
    (r"police|report (it|a crime)", "police"),
)
# An age in each age group that services' age limits are checked against.
AGE_FOR_GROUP = {"under_13": 12, "13_17": 15, "18_plus": 18}


def need_from_answer(text: str, intent: str | None) -> str:
    """Return the need category someone's answer points to ('any' if none does)."""
    if intent in NEED_FROM_DISCLOSURE:
        return NEED_FROM_DISCLOSURE[intent]
    lowered = text.lower()
    for pattern, need in NEED_WORDS:
        if re.search(pattern, lowered):
            return need
    return ANY_NEED


def where(tracker: Tracker) -> Located | NotLocated | None:
    """Return where the location slot points, or None if it was skipped or never given."""
    location = tracker.get_slot("location")
    if not location or location == SKIPPED:
        return None
    return gazetteer(get_settings().geo_tables).locate(str(location))


class DirectoryUnavailableError(Exception):
    """The directory can't be read now (the database is down, or its schema is not up to date)."""


@lru_cache(maxsize=8)
def _schema_checked(url: str) -> str:
    """Return the URL once its schema is known to be at the newest migration (once per process).

    The action server never migrates: `make ready` (or the deployment's migrate job) does before it
    starts. rasa-sdk imports this module at start-up, where no work may run, so the check runs on the
    first request instead; a failure is not cached, so the directory works as soon as someone migrates.
    """
    check_schema(url, get_settings().database_timeouts)
    return url


def search(located: Located | None, need: str | None, age: int | None) -> Found:
    """Return services for a place; raise DirectoryUnavailableError if the directory can't be read.

    Blocking (synchronous SQLAlchemy, bounded by the database timeouts): actions call it off the loop.
    """
    settings = get_settings()
    try:
        url = _schema_checked(settings.database_url)
        with sessionmaker_for(url, settings.database_timeouts).begin() as session:
            return find_services(
                session,
                authority=located.authority if located else None,
                need=need if need in NEEDS else None,
                age=age,
                now=dt.datetime.now(dt.UTC),
            )
    except SchemaNotReadyError as exc:
        logger.error("directory not ready: %s", exc)
        raise DirectoryUnavailableError("schema") from None
    except SQLAlchemyError as exc:
        logger.error("directory search failed, database unavailable: %s", type(exc).__name__)
        raise DirectoryUnavailableError(type(exc).__name__) from None


async def search_off_loop(located: Located | None, need: str | None, age: int | None) -> Found:
    """Search on a worker thread: the action server's event loop keeps serving other conversations."""
    return await asyncio.to_thread(search, located, need, age)


def _intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


class LocationValidation:
    """Checks the answer to "where are you?": a place we can find, or a skip."""

    async def validate_location(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """The person hears if we can't find the place, and can always skip."""
        if value == SKIPPED or _intent(tracker) in SKIP_INTENTS:
            return {"location": SKIPPED}
        places = gazetteer(get_settings().geo_tables)
        for text in (str(value or ""), str(tracker.latest_message.get("text") or "")):
            found = places.locate(text)
            if isinstance(found, Located):
                return {"location": found.matched}
            if found.reason == "northern_ireland":
                return {"location": found.matched}
            if found.reason == "region":
                dispatcher.utter_message(response="directory_location_region", place=found.matched)
                return {"location": None}
        dispatcher.utter_message(response="directory_location_unknown")
        return {"location": None}


class ValidateFindServicesForm(LocationValidation, FormValidationAction):
    """Fills the find-services form: what kind of help, and where."""

    def name(self) -> str:
        return "validate_find_services_form"

    async def extract_service_need(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Someone who already told us what happened isn't asked again; a typed answer is understood."""
        if tracker.get_slot("service_need"):
            return {}
        if tracker.get_slot("requested_slot") == "service_need":
            return {
                "service_need": need_from_answer(
                    str(tracker.latest_message.get("text") or ""), _intent(tracker)
                )
            }
        disclosure = tracker.get_slot("disclosure")
        return (
            {"service_need": NEED_FROM_DISCLOSURE[disclosure]} if disclosure in NEED_FROM_DISCLOSURE else {}
        )

    async def validate_service_need(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Any answer is accepted: one we don't recognise means any kind of help."""
        return {"service_need": value if value in NEEDS else ANY_NEED}


class ValidateFrontDoorForm(LocationValidation, FormValidationAction):
    """Fills the front-door form: which council area."""

    def name(self) -> str:
        return "validate_front_door_form"


class ActionFindServices(Action):
    """Lists up to 3 local services, then national ones, with hours and when they were last checked."""

    def name(self) -> str:
        return "action_find_services"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The person reads services that fit their need, age and area; national ones always follow."""
        place = where(tracker)
        located = place if isinstance(place, Located) else None
        age = (
            None
            if tracker.get_slot("role") == "worker"
            else AGE_FOR_GROUP.get(tracker.get_slot("age_group") or "")
        )
        try:
            found = await search_off_loop(located, tracker.get_slot("service_need"), age)
        except DirectoryUnavailableError:
            dispatcher.utter_message(response="utter_crisis_numbers")
            return [SlotSet("service_need", None)]
        words = Wording(domain.get("responses") or {})
        national = render_all(found.national, words)
        if found.local and located is not None:
            dispatcher.utter_message(
                response="directory_services_local",
                place=located.authority.name,
                local=render_all(found.local, words),
                national=national,
            )
        elif located is not None:
            dispatcher.utter_message(
                response="directory_services_no_local", place=located.authority.name, national=national
            )
        elif isinstance(place, NotLocated) and place.reason == "northern_ireland":
            dispatcher.utter_message(response="directory_services_northern_ireland", national=national)
        else:
            dispatcher.utter_message(response="directory_services_national", national=national)
        if located is not None and located.ambiguous:
            dispatcher.utter_message(response="directory_location_guessed", place=located.authority.name)
        logger.info("services listed: %d local, %d national", len(found.local), len(found.national))
        return [SlotSet("service_need", None)]


class ActionFindFrontDoor(Action):
    """Tells a worker which council runs children's services for a place, and its front door if known."""

    def name(self) -> str:
        return "action_find_front_door"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The worker reads the council's name and its front-door numbers, or how to find them."""
        place = where(tracker)
        # The question is answered here, not later; the council found says which nation's steps apply.
        done: list[EventType] = [SlotSet("worker_topic", None)]
        if isinstance(place, NotLocated) and place.reason == "northern_ireland":
            dispatcher.utter_message(response="directory_front_door_northern_ireland")
            return [*done, SlotSet("worker_nation", "northern_ireland")]
        if not isinstance(place, Located):
            dispatcher.utter_message(response="utter_worker_find_front_door")
            return done
        nation = nation_slot(place.authority.nation)
        if nation is not None:
            done.append(SlotSet("worker_nation", nation))
        try:
            found = await search_off_loop(place, "childrens_services_front_door", None)
        except DirectoryUnavailableError:
            dispatcher.utter_message(response="utter_crisis_numbers")
            return done
        words = Wording(domain.get("responses") or {})
        council = place.authority.name
        if found.local:
            dispatcher.utter_message(
                response="directory_front_door_found", council=council, local=render_all(found.local, words)
            )
        else:
            dispatcher.utter_message(response="directory_front_door_not_listed", council=council)
        if place.ambiguous:
            dispatcher.utter_message(response="directory_location_guessed", place=council)
        return done

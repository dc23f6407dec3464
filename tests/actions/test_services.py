"""Finding services: local first for the council, national always after, filtered by need and age."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from sqlalchemy.orm import Session

from actions.hsds_write import import_records
from actions.locate import Authority
from actions.models import Schedule
from actions.services import Found, Wording, clock, day_span, find_services, hours_text, is_open, render

from .test_hsds import ROOT

LEEDS = Authority("E08000035", "Leeds", "England")
OXFORDSHIRE = Authority("E10000025", "Oxfordshire", "England")
KENT = Authority("E10000016", "Kent", "England")
# A Tuesday at 10:30 in London (British Summer Time).
TUESDAY_MORNING = dt.datetime(2026, 6, 2, 9, 30, tzinfo=dt.UTC)
SUNDAY_NIGHT = dt.datetime(2026, 6, 7, 22, 0, tzinfo=dt.UTC)
WORDS = Wording(yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["responses"])


def names(found: Found) -> tuple[list[str], list[str]]:
    return [i.service.name for i in found.local], [i.service.name for i in found.national]


def test_leeds_gets_its_local_services_then_national_ones(seeded: Session) -> None:
    found = find_services(seeded, authority=LEEDS, need=None, age=15, now=TUESDAY_MORNING)
    local, national = names(found)
    assert "MindMate (Leeds)" in local and "Leeds Children's Social Work Service: Duty and Advice" in local
    assert national[:2] == ["Emergency: police or ambulance (999)", "Childline"]


def test_a_need_filters_local_and_national_services(seeded: Session) -> None:
    found = find_services(seeded, authority=LEEDS, need="image_removal", age=15, now=TUESDAY_MORNING)
    local, national = names(found)
    assert local == []
    assert national[:3] == ["Report Remove", "Take It Down", "Childline"]


def test_age_limits_are_respected(seeded: Session) -> None:
    under_18 = names(
        find_services(seeded, authority=None, need="image_removal", age=15, now=TUESDAY_MORNING)
    )[1]
    adult = names(find_services(seeded, authority=None, need="image_removal", age=25, now=TUESDAY_MORNING))[1]
    assert "Report Remove" in under_18 and "Revenge Porn Helpline" not in under_18
    assert "Report Remove" not in adult and "Childline" not in adult
    assert "Take It Down" in adult  # for anyone who was under 18 in the image


def test_at_most_three_local_services_are_shown(session: Session) -> None:
    records = [
        {
            "id": f"local-{i}",
            "name": f"Local service {i}",
            "status": "active",
            "service_areas": [
                {"id": f"a{i}", "uri": "http://statistics.data.gov.uk/id/statistical-geography/E10000016"}
            ],
        }
        for i in range(5)
    ]
    import_records(session, records)
    found = find_services(session, authority=KENT, need=None, age=None, now=TUESDAY_MORNING)
    assert len(found.local) == 3


def test_inactive_services_are_never_shown(session: Session) -> None:
    area = [{"id": "a", "uri": "http://statistics.data.gov.uk/id/statistical-geography/E10000016"}]
    import_records(
        session, [{"id": "gone", "name": "Closed club", "status": "defunct", "service_areas": area}]
    )
    assert find_services(session, authority=KENT, need=None, age=None, now=TUESDAY_MORNING).local == []


@pytest.mark.parametrize(
    "need", ["bullying", "police", "worker_advice", "grooming", "childrens_services_front_door"]
)
@pytest.mark.parametrize("age", [8, 15, 40, None])
def test_national_services_always_follow_whatever_the_need_and_age(
    seeded: Session, need: str, age: int | None
) -> None:
    found = find_services(seeded, authority=KENT, need=need, age=age, now=TUESDAY_MORNING)
    assert found.national, (need, age)


def test_a_council_with_a_listed_front_door(seeded: Session) -> None:
    found = find_services(
        seeded, authority=OXFORDSHIRE, need="childrens_services_front_door", age=None, now=TUESDAY_MORNING
    )
    assert [i.service.name for i in found.local] == ["Oxfordshire Multi-Agency Safeguarding Hub (MASH)"]


def test_open_now_follows_the_schedule_in_uk_time(seeded: Session) -> None:
    found = find_services(
        seeded, authority=OXFORDSHIRE, need="childrens_services_front_door", age=None, now=TUESDAY_MORNING
    )
    assert found.local[0].open_now is True
    found = find_services(
        seeded, authority=OXFORDSHIRE, need="childrens_services_front_door", age=None, now=SUNDAY_NIGHT
    )
    assert found.local[0].open_now is False
    childline = next(i for i in found.national if i.service.name == "Childline")
    assert childline.always_open and childline.open_now


def test_hours_read_like_people_write_them() -> None:
    weekdays = Schedule(id="s", opens_at=dt.time(8, 45), closes_at=dt.time(17, 15), byday="MO,TU,WE,TH")
    friday = Schedule(id="t", opens_at=dt.time(9), closes_at=dt.time(16), byday="FR")
    assert hours_text([weekdays, friday]) == "Mon–Thu 8:45am–5:15pm; Fri 9am–4pm"
    assert day_span(["SA", "SU", "MO"]) == "Mon, Sat–Sun"
    assert clock(dt.time(12)) == "12pm" and clock(dt.time(23, 59, 59)) == "midnight"
    assert is_open([], TUESDAY_MORNING) is None


def test_a_listing_says_when_it_was_last_checked_and_warns_when_that_is_over_a_year_ago(
    seeded: Session,
) -> None:
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    fresh = find_services(seeded, authority=None, need="crisis", age=15, now=now).national[0]
    assert "Last checked 25 Nov 2026" in render(fresh, WORDS) and not fresh.stale
    later = dt.datetime(2028, 1, 1, 12, tzinfo=dt.UTC)
    old = find_services(seeded, authority=None, need="crisis", age=15, now=later).national[0]
    assert old.stale and "over a year ago" in render(old, WORDS)


def test_a_listing_shows_numbers_hours_and_open_state(seeded: Session) -> None:
    found = find_services(
        seeded, authority=OXFORDSHIRE, need="childrens_services_front_door", age=None, now=TUESDAY_MORNING
    )
    text = render(found.local[0], WORDS)
    assert "Call 0345 050 7666" in text and "Mon–Thu 8:30am–5pm; Fri 8:30am–4pm · Open now" in text
    shout = find_services(seeded, authority=None, need="crisis", age=15, now=TUESDAY_MORNING).national
    shout_text = render(next(i for i in shout if i.service.name == "Shout"), WORDS)
    assert "Text 85258 (send the word SHOUT)" in shout_text and "Open any time, day or night" in shout_text

"""Import and export of Open Referral UK / HSDS 3.0 records."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions.hsds_export import export_services
from actions.hsds_format import SEED_FILE, TEMPLATE_FILE, RejectedImportError
from actions.hsds_read import read_records
from actions.hsds_write import import_records
from actions.models import Phone, Schedule, Service, ServiceArea

ROOT = Path(__file__).resolve().parents[2]
ORUK_FIXTURE = ROOT.parent / "shared" / "fixtures" / "openreferral-uk" / "service_full.json"


def oruk_path() -> Path:
    """The Open Referral UK example record as published, read from ../shared (never copied here)."""
    if not ORUK_FIXTURE.exists():
        pytest.skip(
            f"the shared Open Referral UK fixture is not at {ORUK_FIXTURE} (no ../shared beside the checkout)"
        )
    return ORUK_FIXTURE


FIXTURE_ID = "ac148810-d857-441c-9679-408f346de14b"


def oruk_record() -> dict[str, Any]:
    """The Open Referral UK example record, as published."""
    return json.loads(oruk_path().read_text(encoding="utf-8"))


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def problems_of(session: Session, records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    with pytest.raises(RejectedImportError) as rejected:
        import_records(session, records)
    return [(p.record, p.field) for p in rejected.value.problems]


def test_the_published_oruk_example_is_accepted_as_it_is(session: Session) -> None:
    report = import_records(session, read_records(oruk_path()))
    assert report.services == 1 and report.created == 1
    service = session.get(Service, FIXTURE_ID)
    assert service is not None
    assert (service.name, service.status, service.minimum_age, service.maximum_age) == (
        "Community Counselling",
        "active",
        12,
        100,
    )
    assert str(service.assured_date) == "2005-01-01"
    assert service.organization is not None and service.organization.name == "Example Organization Inc."
    schedule = service.schedules[0]
    assert (str(schedule.opens_at), str(schedule.closes_at), schedule.byday) == (
        "10:00:00",
        "18:00:00",
        "TH,FR",
    )
    # Its odd values are kept, not rejected: an area that is not an ONS code, a link with no location.
    assert service.service_areas[0].area_code is None
    assert service.service_at_locations[0].location_id is None
    assert service.extra["fees"] == "fees_description"


def test_export_round_trips_the_oruk_example(session: Session) -> None:
    import_records(session, [oruk_record()])
    exported = next(export_services(session, FIXTURE_ID))
    for key, value in oruk_record().items():
        if key not in {"last_modified", "schedules"}:
            assert exported[key] == value, key
    assert exported["schedules"][0]["opens_at"] == "10:00:00"
    # Importing the export changes nothing: the second export is the same.
    import_records(session, [copy.deepcopy(exported)])
    assert next(export_services(session, FIXTURE_ID)) == exported


def test_the_whole_seed_round_trips(session: Session) -> None:
    import_records(session, read_records(SEED_FILE))
    first = list(export_services(session))
    import_records(session, copy.deepcopy(first))
    assert list(export_services(session)) == first
    assert len(first) == len(read_records(SEED_FILE))


def test_importing_the_same_records_twice_is_idempotent(session: Session) -> None:
    records = read_records(SEED_FILE)
    import_records(session, records)
    counts = [count(session, model) for model in (Service, Phone, Schedule, ServiceArea)]
    again = import_records(session, read_records(SEED_FILE))
    assert again.created == 0 and again.updated == len(records)
    assert [count(session, model) for model in (Service, Phone, Schedule, ServiceArea)] == counts


def test_an_update_replaces_a_services_phones(session: Session) -> None:
    record = oruk_record()
    record["phones"] = [{"id": "p1", "number": "0113 000 0000", "type": "voice"}]
    import_records(session, [record])
    record["phones"] = [{"id": "p2", "number": "0113 111 1111", "type": "text"}]
    import_records(session, [record])
    service = session.get(Service, FIXTURE_ID)
    assert service is not None and [p.number for p in service.phones] == ["0113 111 1111"]
    assert session.get(Phone, "p1") is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "  "}, "name"),
        ({"status": "open"}, "status"),
        ({"status": None}, "status"),
        ({"minimum_age": -1}, "minimum_age"),
        ({"maximum_age": "twelve"}, "maximum_age"),
        ({"minimum_age": 18, "maximum_age": 12}, "maximum_age"),
        ({"assured_date": "31/12/2024"}, "assured_date"),
        ({"phones": [{"id": "x", "number": "", "type": "voice"}]}, "phones[0].number"),
        ({"phones": [{"id": "x", "number": "1", "type": "pigeon"}]}, "phones[0].type"),
        ({"schedules": [{"id": "s", "opens_at": "25:00"}]}, "schedules[0].opens_at"),
        ({"schedules": [{"id": "s", "byday": "MONDAY"}]}, "schedules[0].byday"),
        ({"organization": {"id": "o"}}, "organization.name"),
    ],
)
def test_a_bad_record_is_reported_by_id_and_field_and_nothing_is_written(
    session: Session, change: dict[str, Any], field: str
) -> None:
    good = read_records(SEED_FILE)[0]
    bad = oruk_record() | change
    assert problems_of(session, [good, bad]) == [(FIXTURE_ID, field)]
    assert count(session, Service) == 0


def test_a_record_without_an_id_is_reported_by_its_place_and_name(session: Session) -> None:
    record = oruk_record()
    del record["id"]
    ((where, field),) = problems_of(session, [record])
    assert field == "id" and where.startswith("#1") and "Community Counselling" in where


def test_the_same_id_twice_in_one_file_is_rejected(session: Session) -> None:
    assert problems_of(session, [oruk_record(), oruk_record()]) == [(FIXTURE_ID, "id")]


def test_an_oruk_api_page_and_a_list_are_both_read(tmp_path: Path) -> None:
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"totalElements": 1, "contents": [oruk_record()]}), encoding="utf-8")
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([oruk_record()]), encoding="utf-8")
    assert read_records(page) == read_records(listed) == [oruk_record()]


def test_a_file_that_is_not_json_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(RejectedImportError, match="problem"):
        read_records(bad)


def test_the_csv_template_imports_with_needs_areas_and_hours(session: Session) -> None:
    records = read_records(TEMPLATE_FILE)
    import_records(session, records)
    service = session.get(Service, records[0]["id"])
    assert service is not None
    assert [a.area_code for a in service.service_areas] == ["E08000035"]
    assert {a.taxonomy_term.code for a in service.attributes if a.taxonomy_term} == {
        "bullying",
        "mental_health",
    }
    assert [p.type for p in service.phones] == ["voice", "text"]
    again = import_records(session, read_records(TEMPLATE_FILE))
    assert again.created == 0


def test_a_csv_row_with_a_bad_age_is_reported_with_its_field(tmp_path: Path, session: Session) -> None:
    lines = TEMPLATE_FILE.read_text(encoding="utf-8").splitlines()
    header = next(line for line in lines if not line.startswith("#"))
    row = "x1,Youth club,,Example org,,,,active,,eleven,,,,,,,,,,,national"
    path = tmp_path / "bad.csv"
    path.write_text(header + "\n" + row + "\n", encoding="utf-8")
    assert problems_of(session, read_records(path)) == [("x1", "minimum_age")]


def test_a_csv_with_an_unknown_column_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,name,status,colour\n1,A,active,red\n", encoding="utf-8")
    with pytest.raises(RejectedImportError) as rejected:
        read_records(path)
    assert rejected.value.problems[0].field == "colour"

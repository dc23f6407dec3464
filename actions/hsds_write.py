"""Writing checked HSDS records into the directory tables: upserts by id, in one transaction, and the
seed loaded into an empty directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions.db import Base, analyze, migration_lock, run_migrations, sessionmaker_for, upgrade
from actions.hsds_check import Checker
from actions.hsds_format import (
    AREA_COLUMNS,
    PHONE_COLUMNS,
    SCHEDULE_COLUMNS,
    SEED_FILE,
    RejectedImportError,
    area_code,
    parse_date,
    parse_datetime,
    parse_time,
)
from actions.hsds_read import read_records
from actions.models import (
    Attribute,
    Location,
    Organization,
    Phone,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
    TaxonomyTerm,
)

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """What an import wrote."""

    services: int = 0
    created: int = 0
    updated: int = 0
    ids: list[str] = field(default_factory=list)


M = TypeVar("M", bound=Base)


def rest(obj: dict[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    """Return the fields of a record that have no column of their own."""
    skip = set(columns)
    return {key: value for key, value in obj.items() if key not in skip}


def fetch[M: Base](session: Session, model: type[M], key: str) -> M:
    """Return the row with this id, or a new one (upsert by id)."""
    row = session.get(model, key)
    if row is None:
        row = model(id=key)
        session.add(row)
    return row


def upsert_service(session: Session, record: dict[str, Any]) -> bool:
    """Write one checked service record; return True if it was new."""
    existing = session.get(Service, record["id"])
    service = existing or Service(id=record["id"])
    if existing is None:
        session.add(service)
    org = record.get("organization")
    if isinstance(org, dict):
        row = fetch(session, Organization, org["id"])
        row.name, row.description = org["name"], org.get("description")
        row.email, row.website = org.get("email"), org.get("website")
        row.extra = rest(org, ("id", "name", "description", "email", "website"))
        service.organization_id = row.id
    else:
        service.organization_id = record.get("organization_id")
    service.name = record["name"]
    service.status = record["status"]
    for key in ("description", "url", "email", "eligibility_description", "alert"):
        setattr(service, key, record.get(key))
    service.minimum_age, service.maximum_age = record.get("minimum_age"), record.get("maximum_age")
    service.assured_date = parse_date(record.get("assured_date"))
    service.last_modified = parse_datetime(record.get("last_modified"))
    service.extra = rest(record, SERVICE_FIELDS)
    service.phones = upsert_parts(session, Phone, record.get("phones"), PHONE_COLUMNS)
    service.schedules = upsert_parts(session, Schedule, record.get("schedules"), SCHEDULE_COLUMNS)
    service.service_areas = upsert_parts(
        session, ServiceArea, record.get("service_areas"), AREA_COLUMNS, area_code=area_code
    )
    service.service_at_locations = upsert_parts(
        session,
        ServiceAtLocation,
        record.get("service_at_locations"),
        (),
        consumed=("location", "location_id"),
        location_id=lambda sal: upsert_location(session, sal),
    )
    service.attributes = upsert_parts(
        session,
        Attribute,
        record.get("attributes"),
        ("value",),
        consumed=("taxonomy_term", "taxonomy_term_id", "link_id"),
        taxonomy_term_id=lambda attribute: upsert_term(session, attribute),
    )
    return existing is None


SERVICE_FIELDS = (
    "id",
    "name",
    "status",
    "description",
    "url",
    "email",
    "eligibility_description",
    "alert",
    "minimum_age",
    "maximum_age",
    "assured_date",
    "last_modified",
    "organization",
    "organization_id",
    "phones",
    "schedules",
    "service_areas",
    "service_at_locations",
    "attributes",
)
LOCATION_FIELDS = ("id", "name", "latitude", "longitude")


PARSERS: dict[str, Callable[[Any], Any]] = {"opens_at": parse_time, "closes_at": parse_time}


def upsert_parts[M: Base](
    session: Session,
    model: type[M],
    items: list[dict[str, Any]] | None,
    columns: tuple[str, ...],
    *,
    consumed: tuple[str, ...] = (),
    **derived: Callable[[dict[str, Any]], Any],
) -> list[M]:
    """Write a service's list of parts in order (upsert by id): `columns` as given (times parsed),
    `derived` columns computed from the item, and every other field kept in `extra`."""
    rows = []
    for position, item in enumerate(items or []):
        values = {column: PARSERS.get(column, same)(item.get(column)) for column in columns}
        values |= {column: derive(item) for column, derive in derived.items()}
        extra = rest(item, ("id", "service_id", *columns, *consumed))
        rows.append(set_fields(fetch(session, model, item["id"]), position=position, extra=extra, **values))
    return rows


def same(value: Any) -> Any:
    """Return the value unchanged."""
    return value


def set_fields[M: Base](row: M, **values: Any) -> M:
    """Set columns on a row and return it."""
    for key, value in values.items():
        setattr(row, key, value)
    return row


def upsert_location(session: Session, sal: dict[str, Any]) -> str | None:
    """Write the location a service_at_location carries; return its id."""
    location = sal.get("location")
    if not isinstance(location, dict):
        known = sal.get("location_id")
        return known if known and session.get(Location, known) is not None else None
    row = fetch(session, Location, location["id"])
    address = (location.get("addresses") or [{}])[0] if isinstance(location.get("addresses"), list) else {}
    set_fields(
        row,
        name=location.get("name"),
        latitude=location.get("latitude"),
        longitude=location.get("longitude"),
        address_1=address.get("address_1"),
        city=address.get("city"),
        postal_code=address.get("postal_code"),
        extra=rest(location, LOCATION_FIELDS),
    )
    return row.id


def upsert_term(session: Session, attribute: dict[str, Any]) -> str | None:
    """Write the taxonomy term an attribute carries; return its id."""
    term = attribute.get("taxonomy_term")
    if not isinstance(term, dict):
        return attribute.get("taxonomy_term_id")
    row = fetch(session, TaxonomyTerm, term["id"])
    set_fields(
        row,
        code=term.get("code"),
        name=term.get("name") or term.get("term") or term.get("code"),
        description=term.get("description"),
        vocabulary=term.get("vocabulary"),
        extra=rest(term, ("id", "code", "name", "description", "vocabulary")),
    )
    return row.id


def import_records(session: Session, records: list[dict[str, Any]]) -> ImportReport:
    """Check every record, then write them all; raise RejectedImportError (writing nothing) on any problem."""
    checker = Checker(session)
    seen: set[str] = set()
    for record in records:
        checker.check(record, seen)
    if checker.problems:
        raise RejectedImportError(checker.problems)
    report = ImportReport()
    for record in records:
        with session.no_autoflush:  # rows are added before their fields are set
            created = upsert_service(session, record)
        session.flush()
        report.services += 1
        report.created += created
        report.updated += not created
        report.ids.append(record["id"])
    return report


def import_file(url: str, path: Path) -> ImportReport:
    """Import one file in one transaction into an up-to-date schema, then refresh planner statistics."""
    records = read_records(path)
    with sessionmaker_for(url).begin() as session:
        report = import_records(session, records)
    analyze(url)
    return report


def import_path(url: str, path: Path) -> ImportReport:
    """Migrate the database if needed, then import one file in one transaction."""
    upgrade(url)
    return import_file(url, path)


def ensure_ready(url: str) -> bool:
    """Migrate the database and, if the directory is empty, load the seed services; True if seeded."""
    with migration_lock(url):  # processes started together take turns: one migrates and seeds
        run_migrations(url)
        with sessionmaker_for(url).begin() as session:
            if session.scalar(select(func.count()).select_from(Service)):
                return False
        report = import_file(url, SEED_FILE)
    logger.info("Directory was empty: loaded %d services from %s", report.services, SEED_FILE)
    return True

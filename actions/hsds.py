"""Open Referral UK / HSDS 3.0 records in and out of the directory tables.

`import_path` reads a JSON service record, a list of them, a saved ORUK API page (`{"contents": [...]}`)
or the project's CSV template (`data/directory/template.csv`), checks every record before writing
anything, and upserts by id in one transaction. `export_services` writes HSDS 3.0 JSON that imports
back to the same rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from actions.db import Base, analyze, migration_lock, run_migrations, sessionmaker_for, upgrade
from actions.models import (
    NEED_VOCABULARY,
    NEEDS,
    PHONE_TYPES,
    STATISTICAL_GEOGRAPHY,
    STATUSES,
    UNITED_KINGDOM,
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
from actions.settings import ROOT

logger = logging.getLogger(__name__)

SEED_FILE = ROOT / "data" / "directory" / "seed.json"
TEMPLATE_FILE = ROOT / "data" / "directory" / "template.csv"
MAX_AGE = 130
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
AREA_CODE = re.compile(r"[EWSNK]\d{8}")
# Stable ids for rows made from CSV, so importing the same file twice changes nothing.
ID_NAMESPACE = uuid.UUID("6f1c0c52-3b0e-4a52-9a59-3b8c4a6e2d10")
CSV_COLUMNS = (
    "id",
    "name",
    "organization_id",
    "organization_name",
    "description",
    "url",
    "email",
    "status",
    "eligibility_description",
    "minimum_age",
    "maximum_age",
    "assured_date",
    "alert",
    "phone",
    "text",
    "text_description",
    "opens_at",
    "closes_at",
    "byday",
    "needs",
    "area_codes",
)


class RejectedImportError(Exception):
    """The file had bad records; nothing from it was written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = problems


@dataclass(frozen=True)
class Problem:
    """One bad field in one record."""

    record: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"record {self.record}: {self.field}: {self.message}"


@dataclass
class ImportReport:
    """What an import wrote."""

    services: int = 0
    created: int = 0
    updated: int = 0
    ids: list[str] = field(default_factory=list)


def stable_id(*parts: str) -> str:
    """Return a UUID made from the parts, the same every time."""
    return str(uuid.uuid5(ID_NAMESPACE, ":".join(parts)))


def need_term_id(code: str) -> str:
    """Return the id of our taxonomy term for a need category."""
    return stable_id(NEED_VOCABULARY, code)


def need_term(code: str) -> dict[str, Any]:
    """Return the HSDS taxonomy_term object for one of our need categories."""
    return {
        "id": need_term_id(code),
        "code": code,
        "name": code.replace("_", " "),
        "vocabulary": NEED_VOCABULARY,
    }


# --- reading files ----------------------------------------------------------------------------------


def read_records(path: Path) -> list[dict[str, Any]]:
    """Return the service records in a JSON or CSV file, or raise RejectedImportError if it can't be read."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise RejectedImportError([Problem(str(path), "file", f"cannot read: {error}")]) from None
    if path.suffix.lower() == ".csv":
        return records_from_csv(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise RejectedImportError([Problem(str(path), "file", f"not valid JSON: {error}")]) from None
    if isinstance(data, dict) and isinstance(data.get("contents"), list):
        data = data["contents"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise RejectedImportError(
            [Problem(str(path), "file", "expected a service record, a list of them or {'contents': [...]}")]
        )
    return data


def records_from_csv(text: str) -> list[dict[str, Any]]:
    """Return HSDS service records for the rows of the project's CSV template."""
    reader = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    missing = [c for c in ("id", "name", "status") if c not in (reader.fieldnames or [])]
    if missing:
        raise RejectedImportError([Problem("header", ", ".join(missing), "missing column(s)")])
    unknown = [c for c in reader.fieldnames or [] if c not in CSV_COLUMNS]
    if unknown:
        raise RejectedImportError([Problem("header", ", ".join(unknown), "unknown column(s)")])
    return [record_from_row(row, number) for number, row in enumerate(reader, start=2)]


def record_from_row(row: dict[str, str], line: int) -> dict[str, Any]:
    """Return the HSDS record for one CSV row (ids of the parts derive from the service id)."""
    cell = {key: (value or "").strip() for key, value in row.items() if key}
    sid = cell.get("id") or f"line {line}"
    record: dict[str, Any] = {"id": cell.get("id", "")}
    for key in ("name", "description", "url", "email", "status", "eligibility_description", "alert"):
        if cell.get(key):
            record[key] = cell[key]
    for key in ("minimum_age", "maximum_age"):
        if cell.get(key):
            record[key] = int(cell[key]) if cell[key].isdigit() else cell[key]
    if cell.get("assured_date"):
        record["assured_date"] = cell["assured_date"]
    if cell.get("organization_name"):
        org_id = cell.get("organization_id") or stable_id("organization", cell["organization_name"])
        record["organization"] = {"id": org_id, "name": cell["organization_name"]}
    elif cell.get("organization_id"):
        record["organization_id"] = cell["organization_id"]
    phones = []
    if cell.get("phone"):
        phones.append({"id": stable_id(sid, "phone", "voice"), "number": cell["phone"], "type": "voice"})
    if cell.get("text"):
        phone = {"id": stable_id(sid, "phone", "text"), "number": cell["text"], "type": "text"}
        if cell.get("text_description"):
            phone["description"] = cell["text_description"]
        phones.append(phone)
    record["phones"] = phones
    if cell.get("opens_at") or cell.get("closes_at") or cell.get("byday"):
        schedule = {"id": stable_id(sid, "schedule")}
        for key in ("opens_at", "closes_at", "byday"):
            if cell.get(key):
                schedule[key] = cell[key]
        record["schedules"] = [schedule]
    needs = [n.strip() for n in cell.get("needs", "").split(";") if n.strip()]
    record["attributes"] = [
        {"id": stable_id(sid, "need", need), "taxonomy_term": need_term(need)} for need in needs
    ]
    areas = [a.strip() for a in cell.get("area_codes", "").split(";") if a.strip()]
    record["service_areas"] = [
        {
            "id": stable_id(sid, "area", area),
            "uri": STATISTICAL_GEOGRAPHY + (UNITED_KINGDOM if area.lower() == "national" else area),
        }
        for area in areas
    ]
    return record


# --- checking records -------------------------------------------------------------------------------


class Checker:
    """Collects every problem in a file's records before anything is written."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.problems: list[Problem] = []
        self.record = "?"

    def add(self, name: str, message: str) -> None:
        self.problems.append(Problem(self.record, name, message))

    def text(self, obj: dict[str, Any], key: str, *, required: bool = False, where: str = "") -> None:
        value = obj.get(key)
        label = f"{where}{key}"
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(label, "missing")
        elif not isinstance(value, str):
            self.add(label, f"must be text, got {value!r}")

    def age(self, obj: dict[str, Any], key: str) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AGE:
            self.add(key, f"must be a whole number of years from 0 to {MAX_AGE}, got {value!r}")
            return None
        return value

    def date(self, obj: dict[str, Any], key: str) -> None:
        value = obj.get(key)
        if value is not None and parse_date(value) is None:
            self.add(key, f"must be a date like 2025-03-31, got {value!r}")

    def time(self, obj: dict[str, Any], key: str, where: str) -> None:
        value = obj.get(key)
        if value is not None and parse_time(value) is None:
            self.add(f"{where}{key}", f"must be a time like 09:00 or 17:30:00, got {value!r}")

    def items(self, record: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = record.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.add(key, "must be a list of objects")
            return []
        return value

    def check(self, record: dict[str, Any], seen: set[str]) -> None:
        """Record every problem with one service record."""
        rid = record.get("id")
        self.record = str(rid) if rid else f"#{len(seen) + 1} ({record.get('name', 'no name')!s:.40})"
        self.text(record, "id", required=True)
        if isinstance(rid, str) and rid:
            if rid in seen:
                self.add("id", "appears twice in this file")
            seen.add(rid)
            if len(rid) > 64:
                self.add("id", "longer than 64 characters")
        self.text(record, "name", required=True)
        for key in ("description", "url", "email", "eligibility_description", "alert"):
            self.text(record, key)
        status = record.get("status")
        if status is None:
            self.add("status", f"missing (one of {', '.join(STATUSES)})")
        elif status not in STATUSES:
            self.add("status", f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        low, high = self.age(record, "minimum_age"), self.age(record, "maximum_age")
        if low is not None and high is not None and low > high:
            self.add("maximum_age", f"is below minimum_age ({high} < {low})")
        self.date(record, "assured_date")
        if record.get("last_modified") is not None and parse_datetime(record["last_modified"]) is None:
            self.add("last_modified", f"must be a date and time, got {record['last_modified']!r}")
        self.organization(record)
        for i, phone in enumerate(self.items(record, "phones")):
            where = f"phones[{i}]."
            self.text(phone, "id", required=True, where=where)
            self.text(phone, "number", required=True, where=where)
            if phone.get("type") is not None and phone["type"] not in PHONE_TYPES:
                self.add(f"{where}type", f"unknown phone type {phone['type']!r} ({', '.join(PHONE_TYPES)})")
        for i, schedule in enumerate(self.items(record, "schedules")):
            where = f"schedules[{i}]."
            self.text(schedule, "id", required=True, where=where)
            self.time(schedule, "opens_at", where)
            self.time(schedule, "closes_at", where)
            byday = schedule.get("byday")
            if byday is not None and parse_byday(byday) is None:
                self.add(f"{where}byday", f"must be days like MO,TU,WE, got {byday!r}")
        for key in ("service_areas", "service_at_locations"):
            for i, item in enumerate(self.items(record, key)):
                self.text(item, "id", required=True, where=f"{key}[{i}].")
                location = item.get("location")
                if isinstance(location, dict):
                    self.text(location, "id", required=True, where=f"{key}[{i}].location.")
        for i, attribute in enumerate(self.items(record, "attributes")):
            self.attribute(attribute, f"attributes[{i}].")

    def organization(self, record: dict[str, Any]) -> None:
        org = record.get("organization")
        if org is not None:
            if not isinstance(org, dict):
                self.add("organization", "must be an object")
                return
            self.text(org, "id", required=True, where="organization.")
            self.text(org, "name", required=True, where="organization.")
        elif (
            record.get("organization_id")
            and self.session.get(Organization, record["organization_id"]) is None
        ):
            self.add("organization_id", f"no organization {record['organization_id']!r} in the directory")

    def attribute(self, attribute: dict[str, Any], where: str) -> None:
        self.text(attribute, "id", required=True, where=where)
        term = attribute.get("taxonomy_term")
        if isinstance(term, dict):
            self.text(term, "id", required=True, where=f"{where}taxonomy_term.")
            if not (term.get("name") or term.get("term") or term.get("code")):
                self.add(f"{where}taxonomy_term.name", "missing")
            if term.get("vocabulary") == NEED_VOCABULARY:
                if term.get("code") not in NEEDS:
                    self.add(
                        f"{where}taxonomy_term.code",
                        f"unknown need {term.get('code')!r} (one of {', '.join(NEEDS)})",
                    )
                value = attribute.get("value")
                if value is not None and not (isinstance(value, str) and value.isdigit()):
                    self.add(f"{where}value", f"the rank of a need must be a whole number, got {value!r}")
        elif (
            attribute.get("taxonomy_term_id")
            and self.session.get(TaxonomyTerm, attribute["taxonomy_term_id"]) is None
        ):
            self.add(f"{where}taxonomy_term_id", "no such taxonomy term in the directory")


def parse_date(value: Any) -> dt.date | None:
    """Return the date an ISO date string means, or None."""
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_datetime(value: Any) -> dt.datetime | None:
    """Return the aware datetime an ISO string means (naive means UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def parse_time(value: Any) -> dt.time | None:
    """Return the time an 'HH:MM' or 'HH:MM:SS' string means, or None."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
        return None
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        return None


def parse_byday(value: Any) -> list[str] | None:
    """Return the RFC 5545 day codes in 'MO,TU,…', or None if any is not a day."""
    if not isinstance(value, str):
        return None
    days = [d.strip().upper() for d in value.split(",") if d.strip()]
    return days if days and all(d in DAYS for d in days) else None


def area_code(area: dict[str, Any]) -> str | None:
    """Return the ONS code a service area points at (its uri), if it is one."""
    uri = area.get("uri")
    if isinstance(uri, str) and uri.startswith(STATISTICAL_GEOGRAPHY):
        code = uri.removeprefix(STATISTICAL_GEOGRAPHY).strip("/")
        if AREA_CODE.fullmatch(code):
            return code
    return None


# --- writing ----------------------------------------------------------------------------------------

M = TypeVar("M", bound=Base)


def rest(obj: dict[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    """Return the fields of a record that have no column of their own."""
    skip = set(columns)
    return {key: value for key, value in obj.items() if key not in skip}


def fetch(session: Session, model: type[M], key: str) -> M:
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


# A part's fields that have columns of their own (read on import, written back on export).
PHONE_COLUMNS = ("number", "type", "description")
SCHEDULE_COLUMNS = ("opens_at", "closes_at", "byday", "description")
AREA_COLUMNS = ("name",)
PARSERS: dict[str, Callable[[Any], Any]] = {"opens_at": parse_time, "closes_at": parse_time}


def upsert_parts(
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


def set_fields(row: M, **values: Any) -> M:
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


@lru_cache(maxsize=8)
def prepared(url: str) -> str:
    """Return the URL after making sure, once per process, that its database is ready to query."""
    ensure_ready(url)
    return url


# --- export -----------------------------------------------------------------------------------------


def iso(value: dt.date | dt.time | dt.datetime | None) -> str | None:
    """Return an ISO string (datetimes come back aware from the `Timestamp` columns)."""
    return value.isoformat() if value is not None else None


def compact(obj: dict[str, Any]) -> dict[str, Any]:
    """Return the object without empty (None) fields."""
    return {key: value for key, value in obj.items() if value is not None}


def service_json(service: Service) -> dict[str, Any]:
    """Return one service as an HSDS 3.0 record (what `import` reads back to the same rows)."""
    record = compact(
        {
            "id": service.id,
            "name": service.name,
            "description": service.description,
            "url": service.url,
            "email": service.email,
            "status": service.status,
            "eligibility_description": service.eligibility_description,
            "minimum_age": service.minimum_age,
            "maximum_age": service.maximum_age,
            "assured_date": iso(service.assured_date),
            "alert": service.alert,
            "last_modified": iso(service.last_modified),
        }
    )
    record.update(service.extra)
    org = service.organization
    if org is not None:
        record["organization"] = compact(
            {
                "id": org.id,
                "name": org.name,
                "description": org.description,
                "email": org.email,
                "website": org.website,
            }
        ) | dict(org.extra)
    record["phones"] = [part_json(p, PHONE_COLUMNS) for p in service.phones]
    record["schedules"] = [part_json(s, SCHEDULE_COLUMNS) for s in service.schedules]
    record["service_areas"] = [part_json(a, AREA_COLUMNS) for a in service.service_areas]
    record["service_at_locations"] = [sal_json(sal) for sal in service.service_at_locations]
    record["attributes"] = [attribute_json(a) for a in service.attributes]
    return record


def json_value(value: Any) -> Any:
    """Return a column value as JSON: dates and times as ISO text, anything else as it is."""
    return iso(value) if isinstance(value, dt.date | dt.time) else value


def part_json(row: Phone | Schedule | ServiceArea, columns: tuple[str, ...]) -> dict[str, Any]:
    """Return a part as HSDS JSON: id, its columns, then the fields kept in `extra`."""
    return (
        compact({"id": row.id} | {column: json_value(getattr(row, column)) for column in columns}) | row.extra
    )


def sal_json(sal: ServiceAtLocation) -> dict[str, Any]:
    """Return a service_at_location with its location inline."""
    out: dict[str, Any] = {"id": sal.id} | sal.extra
    if sal.location is not None:
        loc = sal.location
        out["location"] = (
            compact({"id": loc.id, "name": loc.name, "latitude": loc.latitude, "longitude": loc.longitude})
            | loc.extra
        )
    return out


def attribute_json(attribute: Attribute) -> dict[str, Any]:
    """Return an attribute with its taxonomy term inline."""
    out: dict[str, Any] = compact({"id": attribute.id, "value": attribute.value}) | attribute.extra
    term = attribute.taxonomy_term
    if term is not None:
        out["taxonomy_term"] = (
            compact(
                {
                    "id": term.id,
                    "code": term.code,
                    "name": term.name,
                    "description": term.description,
                    "vocabulary": term.vocabulary,
                }
            )
            | term.extra
        )
    return out


def export_services(session: Session, service_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield services as HSDS 3.0 records, ordered by id (one service if an id is given)."""
    query = (
        select(Service)
        .options(
            selectinload(Service.organization),
            selectinload(Service.phones),
            selectinload(Service.schedules),
            selectinload(Service.service_areas),
            selectinload(Service.service_at_locations).selectinload(ServiceAtLocation.location),
            selectinload(Service.attributes).selectinload(Attribute.taxonomy_term),
        )
        .order_by(Service.id)
    )
    if service_id is not None:
        query = query.where(Service.id == service_id)
    for service in session.scalars(query):
        yield service_json(service)

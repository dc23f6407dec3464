"""Checking HSDS records before anything is written: every bad field of every record is reported."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from actions.hsds_format import (
    MAX_AGE,
    Problem,
    parse_byday,
    parse_date,
    parse_datetime,
    parse_time,
)
from actions.models import (
    NEED_VOCABULARY,
    NEEDS,
    PHONE_TYPES,
    STATUSES,
    Organization,
    TaxonomyTerm,
)


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

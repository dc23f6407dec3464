"""The directory's record format (Open Referral UK / HSDS 3.0): the files it comes in, its limits,
stable ids, field parsers, and what a rejected import reports.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from actions.models import (
    NEED_VOCABULARY,
    STATISTICAL_GEOGRAPHY,
)
from actions.settings import ROOT

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


# A part's fields that have columns of their own (read on import, written back on export).
PHONE_COLUMNS = ("number", "type", "description")
SCHEDULE_COLUMNS = ("opens_at", "closes_at", "byday", "description")
AREA_COLUMNS = ("name",)


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
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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

"""Reading directory files: a JSON service record, a list of them, a saved ORUK API page
(`{"contents": [...]}`) or the project's CSV template (`data/directory/template.csv`), as HSDS records.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from actions.hsds_format import CSV_COLUMNS, Problem, RejectedImportError, need_term, stable_id
from actions.models import (
    STATISTICAL_GEOGRAPHY,
    UNITED_KINGDOM,
)


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

"""Exporting the directory as HSDS 3.0 JSON that imports back to the same rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from actions.hsds_format import AREA_COLUMNS, PHONE_COLUMNS, SCHEDULE_COLUMNS
from actions.models import (
    Attribute,
    Phone,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
)


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

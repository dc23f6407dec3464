"""Finding services for a person: local ones for their council first, national ones always after.

`find_services` takes a session and returns listings; `render` turns one into the text a person reads,
using the wording in domain.yml's `directory_*` responses (see `Wording`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, cast, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from actions.locate import Authority
from actions.models import (
    NATION_CODES,
    NEED_VOCABULARY,
    UNITED_KINGDOM,
    Attribute,
    Schedule,
    Service,
    ServiceArea,
    TaxonomyTerm,
)

UK_TIME = ZoneInfo("Europe/London")
LOCAL_LIMIT = 3
NATIONAL_LIMIT = 4
STALE_AFTER = dt.timedelta(days=365)
SAFETY_NET_NEED = "crisis"
DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
END_OF_DAY = dt.time(23, 59)
UNRANKED = 99


@dataclass(frozen=True)
class Listing:
    """A service as found for someone, with what we can say about it now."""

    service: Service
    local: bool
    open_now: bool | None
    always_open: bool
    stale: bool


@dataclass(frozen=True)
class Found:
    """What a search found: local listings (maybe none) and national ones (never none if seeded)."""

    local: list[Listing]
    national: list[Listing]


def need_attributes(column: Any, need: str) -> Select[Any]:
    """Return a query of `column` over this service's attributes that tag it with the need."""
    return (
        select(column)
        .join(TaxonomyTerm, Attribute.taxonomy_term_id == TaxonomyTerm.id)
        .where(
            Attribute.service_id == Service.id,
            TaxonomyTerm.vocabulary == NEED_VOCABULARY,
            TaxonomyTerm.code == need,
        )
    )


def need_filter(need: str) -> Any:
    """Return a condition: the service is tagged with this need category."""
    return exists(need_attributes(Attribute.id, need))


def age_filter(age: int) -> Any:
    """Return a condition: someone of this age may use the service."""
    return (or_(Service.minimum_age.is_(None), Service.minimum_age <= age)) & (
        or_(Service.maximum_age.is_(None), Service.maximum_age >= age)
    )


def in_areas(codes: Sequence[str]) -> Any:
    """Return a condition: the service covers one of these ONS areas (the index on area_code leads)."""
    return Service.id.in_(select(ServiceArea.service_id).where(ServiceArea.area_code.in_(codes)))


def matching_ids(need: str | None, age: int | None, areas: Sequence[str], order: Any) -> Select[str]:
    """Return the ids of active services in the areas, filtered by need and age, in listing order."""
    query = select(Service.id).where(Service.status == "active", in_areas(areas))
    if need:
        query = query.where(need_filter(need))
    if age is not None:
        query = query.where(age_filter(age))
    return query.order_by(order, Service.name)


def need_rank(need: str) -> Any:
    """Return the order we list a service in for a need: its need attribute's value (unranked last)."""
    rank = need_attributes(func.min(cast(Attribute.value, Integer)), need).scalar_subquery()
    return func.coalesce(rank, UNRANKED)


def find_services(
    session: Session,
    *,
    authority: Authority | None,
    need: str | None,
    age: int | None,
    now: dt.datetime,
) -> Found:
    """Return up to 3 local services for the council, then national ones (a safety net if none match).

    Ids are chosen by small id-only queries; then one query loads just the services to be shown.
    """
    local_ids: list[str] = []
    if authority is not None:
        order = need_rank(need) if need else Service.name
        local_ids = list(session.scalars(matching_ids(need, age, [authority.code], order).limit(LOCAL_LIMIT)))
    areas = [UNITED_KINGDOM]
    if authority is not None and authority.nation in NATION_CODES:
        areas.append(NATION_CODES[authority.nation])
    national_ids: list[str] = []
    for national_need, national_age in (
        (need or SAFETY_NET_NEED, age),
        (SAFETY_NET_NEED, age),
        (SAFETY_NET_NEED, None),
    ):
        query = matching_ids(national_need, national_age, areas, need_rank(national_need)).limit(
            NATIONAL_LIMIT
        )
        national_ids = list(session.scalars(query))
        if national_ids:
            break
    loaded = {
        service.id: service
        for service in session.scalars(
            select(Service)
            .where(Service.id.in_(local_ids + national_ids))
            .options(selectinload(Service.phones), selectinload(Service.schedules))
        )
    }
    return Found(
        [listing(loaded[i], True, now) for i in local_ids],
        [listing(loaded[i], False, now) for i in national_ids],
    )


def listing(service: Service, local: bool, now: dt.datetime) -> Listing:
    """Return the listing of a service at a moment."""
    always = is_always_open(service.schedules)
    stale = service.assured_date is None or now.date() - service.assured_date > STALE_AFTER
    return Listing(service, local, True if always else is_open(service.schedules, now), always, stale)


def days(schedule: Schedule) -> list[str]:
    """Return the day codes a schedule covers (every day if it names none)."""
    named = [d.strip().upper() for d in (schedule.byday or "").split(",") if d.strip()]
    return named or list(DAY_CODES)


def is_always_open(schedules: Sequence[Schedule]) -> bool:
    """Return True if one schedule covers every day, all day."""
    return any(
        s.opens_at == dt.time(0, 0)
        and s.closes_at is not None
        and s.closes_at >= END_OF_DAY
        and set(days(s)) == set(DAY_CODES)
        for s in schedules
    )


def opening_hours(schedules: Sequence[Schedule]) -> list[tuple[list[str], dt.time, dt.time]]:
    """Return (days, opens, closes) of the schedules that give both times."""
    return [
        (days(s), s.opens_at, s.closes_at)
        for s in schedules
        if s.opens_at is not None and s.closes_at is not None
    ]


def is_open(schedules: Sequence[Schedule], now: dt.datetime) -> bool | None:
    """Return whether any schedule is open at this moment (UK time); None if hours are unknown."""
    hours = opening_hours(schedules)
    if not hours:
        return None
    local = now.astimezone(UK_TIME)
    today, time = DAY_CODES[local.weekday()], local.time()
    return any(today in on and opens <= time <= closes for on, opens, closes in hours)


# --- wording ----------------------------------------------------------------------------------------


class Wording:
    """The fixed words of a listing, from domain.yml's `directory_*` responses (no Python strings)."""

    def __init__(self, responses: Mapping[str, Any]) -> None:
        self.responses = responses

    def __call__(self, name: str, **values: Any) -> str:
        """Return a response's first text, filled in."""
        text = str(self.responses[name][0]["text"])
        return text.format(**values) if values else text


def clock(value: dt.time) -> str:
    """Return a time as people write it: 9am, 5:30pm, midnight."""
    if value >= END_OF_DAY or value == dt.time(0, 0):
        return "midnight"
    hour = value.hour % 12 or 12
    suffix = "am" if value.hour < 12 else "pm"
    return f"{hour}{suffix}" if value.minute == 0 else f"{hour}:{value.minute:02d}{suffix}"


DAY_NAMES = {"MO": "Mon", "TU": "Tue", "WE": "Wed", "TH": "Thu", "FR": "Fri", "SA": "Sat", "SU": "Sun"}


def day_span(codes: list[str]) -> str:
    """Return days as ranges: 'Mon–Fri', 'Sat–Sun', 'Mon, Wed'."""
    ordered = sorted(set(codes), key=DAY_CODES.index)
    runs: list[list[str]] = []
    for code in ordered:
        if runs and DAY_CODES.index(code) == DAY_CODES.index(runs[-1][-1]) + 1:
            runs[-1].append(code)
        else:
            runs.append([code])
    return ", ".join(
        DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}–{DAY_NAMES[run[-1]]}" for run in runs
    )


def hours_text(schedules: Sequence[Schedule]) -> str:
    """Return opening hours as 'Mon–Fri 9am–5pm; Sat 10am–1pm' (empty if unknown)."""
    return "; ".join(
        f"{day_span(on)} {clock(opens)}–{clock(closes)}" for on, opens, closes in opening_hours(schedules)
    )


def render(item: Listing, words: Wording) -> str:
    """Return one service as the lines a person reads: name, how to reach it, when, last checked."""
    service = item.service
    lines = [f"• {service.name}"]
    if service.description:
        lines.append(service.description)
    for phone in service.phones:
        label = "directory_text" if phone.type == "text" else "directory_call"
        lines.append(
            words(label, number=phone.number, note=f" ({phone.description})" if phone.description else "")
        )
    if service.url:
        lines.append(service.url)
    if item.always_open:
        lines.append(words("directory_always_open"))
    else:
        hours = hours_text(service.schedules)
        if hours:
            state = {True: "directory_open_now", False: "directory_closed_now", None: None}[item.open_now]
            lines.append(hours + (f" · {words(state)}" if state else ""))
    if service.alert:
        lines.append(service.alert)
    checked = service.assured_date.strftime("%-d %b %Y") if service.assured_date else None
    if checked is None:
        lines.append(words("directory_never_checked"))
    else:
        lines.append(words("directory_stale" if item.stale else "directory_checked", date=checked))
    return "\n".join(lines)


def render_all(listings: Sequence[Listing], words: Wording) -> str:
    """Return listings separated by blank lines."""
    return "\n\n".join(render(item, words) for item in listings)

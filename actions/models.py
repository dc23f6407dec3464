"""The directory's tables: the part of Open Referral UK / HSDS 3.0 that signposting needs.

Each table keeps the HSDS fields we use as columns and any other fields of the record, untouched, in
`extra` (JSON), so an import exported again gives back what came in. The schema is made by Alembic
(`migrations/`), never by `create_all` in production code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, Time
from sqlalchemy.orm import Mapped, mapped_column, relationship

from actions.db import Base, Timestamp

# HSDS 3.0 service.status values.
STATUSES = ("active", "inactive", "defunct", "temporarily closed")
# HSDS 3.0 phone.type values.
PHONE_TYPES = ("text", "voice", "fax", "cell", "video", "pager", "textphone")
# Our need categories: a taxonomy of our own, attached to services through HSDS attributes.
NEED_VOCABULARY = "signpost-need"
NEEDS = (
    "sextortion",
    "image_removal",
    "grooming",
    "bullying",
    "harassment",
    "crisis",
    "mental_health",
    "worker_advice",
    "childrens_services_front_door",
    "police",
)
# ONS code of the whole United Kingdom: a service area with this code is national.
UNITED_KINGDOM = "K02000001"
# ONS codes of the nations, for services that cover one nation.
NATION_CODES = {
    "England": "E92000001",
    "Wales": "W92000004",
    "Scotland": "S92000003",
    "Northern Ireland": "N92000002",
}
STATISTICAL_GEOGRAPHY = "http://statistics.data.gov.uk/id/statistical-geography/"

ID = String(64)


class Organization(Base):
    """Who runs a service."""

    __tablename__ = "organization"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(255))
    website: Mapped[str | None] = mapped_column(String(500))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)

    services: Mapped[list[Service]] = relationship(back_populates="organization")


class Service(Base):
    """One service a person can be signposted to."""

    __tablename__ = "service"
    __table_args__ = (Index("ix_service_status_name", "status", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    organization_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    eligibility_description: Mapped[str | None] = mapped_column(Text)
    minimum_age: Mapped[int | None] = mapped_column(Integer)
    maximum_age: Mapped[int | None] = mapped_column(Integer)
    assured_date: Mapped[dt.date | None] = mapped_column(Date)
    alert: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)

    organization: Mapped[Organization | None] = relationship(back_populates="services")
    phones: Mapped[list[Phone]] = relationship(cascade="all, delete-orphan", order_by="Phone.position")
    schedules: Mapped[list[Schedule]] = relationship(
        cascade="all, delete-orphan", order_by="Schedule.position"
    )
    service_areas: Mapped[list[ServiceArea]] = relationship(
        cascade="all, delete-orphan", order_by="ServiceArea.position"
    )
    service_at_locations: Mapped[list[ServiceAtLocation]] = relationship(
        cascade="all, delete-orphan", order_by="ServiceAtLocation.position"
    )
    attributes: Mapped[list[Attribute]] = relationship(
        cascade="all, delete-orphan", order_by="Attribute.position"
    )


class Location(Base):
    """A place where a service is delivered."""

    __tablename__ = "location"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    address_1: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(255))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ServiceAtLocation(Base):
    """A service delivered at a location (ORUK allows one with no location given)."""

    __tablename__ = "service_at_location"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[str | None] = mapped_column(ForeignKey("location.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)

    location: Mapped[Location | None] = relationship()


class Phone(Base):
    """A number to call or text."""

    __tablename__ = "phone"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(64))
    type: Mapped[str | None] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Schedule(Base):
    """When a service is open: one weekly pattern (RFC 5545 byday) with opening and closing times."""

    __tablename__ = "schedule"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), index=True)
    opens_at: Mapped[dt.time | None] = mapped_column(Time)
    closes_at: Mapped[dt.time | None] = mapped_column(Time)
    byday: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ServiceArea(Base):
    """Where a service is offered: an ONS area code (authority, nation or UK) and/or a description."""

    __tablename__ = "service_area"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    area_code: Mapped[str | None] = mapped_column(String(9), index=True)
    position: Mapped[int] = mapped_column(default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TaxonomyTerm(Base):
    """A term from a vocabulary; ours is `signpost-need`."""

    __tablename__ = "taxonomy_term"
    __table_args__ = (Index("ix_taxonomy_term_vocabulary_code", "vocabulary", "code"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    vocabulary: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Attribute(Base):
    """Links a service to a taxonomy term (HSDS 3.0 attribute)."""

    __tablename__ = "attribute"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), index=True)
    taxonomy_term_id: Mapped[str | None] = mapped_column(ForeignKey("taxonomy_term.id"), index=True)
    value: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)

    taxonomy_term: Mapped[TaxonomyTerm | None] = relationship()

"""Case numbers are never used twice, even after /forget deleted the newest case (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from alembic import command
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from actions.db import alembic_config, engine_for, upgrade
from bot import cases, privacy
from bot.crypto import Cipher
from bot.escalation import Priority
from bot.models import CaseEvent, CaseMessage, HandoverCase
from tests.bot.conftest import TRANSCRIPT_KEY

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
CIPHER = Cipher([TRANSCRIPT_KEY])


def open_one(session: Session, ref: str) -> int:
    return cases.open_or_raise(
        session, CIPHER, ref, 1, Priority.HIGH, "disclose_grooming", ["hi"], NOW
    ).case.number


def test_after_forgetting_the_newest_case_the_next_case_gets_a_larger_number(session: Session) -> None:
    open_one(session, "older")
    newest = open_one(session, "forgets")
    privacy.forget_cases(session, "forgets")
    session.flush()
    assert session.get(HandoverCase, newest) is None
    assert open_one(session, "someone-else") > newest


def test_the_migration_keeps_sqlite_cases_and_their_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0004")  # a database made before case numbers were kept unique
    with Session(engine_for(url)) as session, session.begin():
        first = open_one(session, "p1")
        cases.move(session, CIPHER, first, "close", "moderator:1", NOW)
        second = open_one(session, "p1")  # a person may have a closed case and an open one
    upgrade(url)
    with Session(engine_for(url)) as session, session.begin():
        assert session.get(HandoverCase, first) is not None and session.get(HandoverCase, second) is not None
        assert session.scalar(select(CaseEvent).where(CaseEvent.case_id == first)) is not None  # not cascaded
        assert session.scalar(select(CaseMessage).where(CaseMessage.case_id == second)) is not None
        privacy.forget_cases(session, "p1")
    with Session(engine_for(url)) as session, session.begin():
        assert open_one(session, "p2") > second
        assert session.scalar(text("PRAGMA foreign_keys")) == 1  # the pooled connection checks them again
        schema = session.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'handover_case'"))
        assert "AUTOINCREMENT" in schema
        index = session.scalar(
            text("SELECT sql FROM sqlite_master WHERE name = 'uq_handover_case_open_user'")
        )
        assert "WHERE" in index  # still one open case per person, not one case ever

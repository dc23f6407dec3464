"""Cases in the database: conditional moves, one open case per person, the transcript (on PostgreSQL too)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import cases
from bot.crypto import Cipher
from bot.escalation import Priority, TransitionError
from bot.models import HandoverCase
from tests.bot.conftest import TRANSCRIPT_KEY

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
CIPHER = Cipher([TRANSCRIPT_KEY])


def open_one(
    session: Session, ref: str = "p1", priority: Priority = Priority.HIGH, at: dt.datetime = NOW
) -> int:
    return cases.open_or_raise(
        session, CIPHER, ref, 1, priority, "disclose_grooming", ["hello"], at
    ).case.number


def test_a_case_opens_queued_with_the_recent_lines_in_its_transcript(session: Session) -> None:
    number = open_one(session)
    view = cases.CaseView.of(session.get(HandoverCase, number), CIPHER)
    assert (view.state.value, view.priority.value, view.opened_at) == ("queued", "high", NOW)
    assert cases.transcript(session, CIPHER, number) == [("user", "hello")]


def test_a_second_claim_of_the_same_case_fails(session: Session) -> None:
    number = open_one(session)
    cases.move(session, CIPHER, number, "claim", "moderator:1", NOW, moderator_id=1, moderator_name="A")
    with pytest.raises(TransitionError):
        cases.move(session, CIPHER, number, "claim", "moderator:2", NOW, moderator_id=2, moderator_name="B")
    assert cases.held_by(session, 1) == [number] and cases.held_by(session, 2) == []


def test_a_stale_read_cannot_overwrite_a_newer_move(session: Session, database_url: str) -> None:
    number = open_one(session)
    session.execute(
        HandoverCase.__table__.update().where(HandoverCase.id == number).values(state="claimed", claimed_by=1)
    )
    # The ORM object still says "queued"; the conditional update notices the row has moved on.
    with pytest.raises(TransitionError):
        cases.move(session, CIPHER, number, "claim", "moderator:2", NOW, moderator_id=2, moderator_name="B")


def test_closing_forgets_how_to_reach_the_person_but_hands_it_back_once(session: Session) -> None:
    number = open_one(session)
    closed = cases.move(session, CIPHER, number, "close", "moderator:1", NOW)
    assert closed.chat_id == 1
    assert session.get(HandoverCase, number).chat_token is None


def test_one_person_has_at_most_one_open_case(session: Session) -> None:
    open_one(session)
    assert (
        cases.open_or_raise(session, CIPHER, "p1", 1, Priority.NORMAL, "request_human", [], NOW).created
        is False
    )
    session.add(
        HandoverCase(
            user_ref="p1", state="queued", priority="normal", priority_rank=2, reason="x", opened_at=NOW
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_a_closed_case_lets_the_person_open_a_new_one(session: Session) -> None:
    first = open_one(session)
    cases.move(session, CIPHER, first, "close", "moderator:1", NOW)
    assert open_one(session) != first


def test_the_queue_lists_queued_cases_most_urgent_first_then_oldest_then_claimed(session: Session) -> None:
    later = dt.timedelta(minutes=5)
    normal = open_one(session, "a", Priority.NORMAL)
    urgent = open_one(session, "b", Priority.URGENT, NOW + 2 * later)
    claimed = open_one(session, "c", Priority.URGENT)
    newer_high = open_one(session, "d", Priority.HIGH, NOW + later)
    older_high = open_one(session, "e", Priority.HIGH, NOW + dt.timedelta(minutes=1))
    cases.move(session, CIPHER, claimed, "claim", "moderator:1", NOW, moderator_id=1, moderator_name="A")
    assert [c.number for c in cases.open_queue(session, CIPHER)] == [
        urgent,
        older_high,
        newer_high,
        normal,
        claimed,
    ]

"""Case states and rules, without Telegram or a database."""

from __future__ import annotations

import datetime as dt

import pytest

from bot import cards
from bot.escalation import (
    CaseState,
    Hours,
    NoTarget,
    Priority,
    TargetError,
    TransitionError,
    case_button,
    next_state,
    parse_case_button,
    parse_feedback_button,
    pick_case,
    raises_priority,
    waited,
)

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("state", "move", "after"),
    [
        (CaseState.QUEUED, "claim", CaseState.CLAIMED),
        (CaseState.CLAIMED, "release", CaseState.QUEUED),
        (CaseState.CLAIMED, "close", CaseState.CLOSED),
        (CaseState.QUEUED, "close", CaseState.CLOSED),
    ],
)
def test_allowed_moves(state: CaseState, move: str, after: CaseState) -> None:
    assert next_state(state, move) is after


@pytest.mark.parametrize(
    ("state", "move"),
    [
        (CaseState.CLAIMED, "claim"),
        (CaseState.CLOSED, "claim"),
        (CaseState.CLOSED, "close"),
        (CaseState.QUEUED, "release"),
        (CaseState.QUEUED, "delete"),
    ],
)
def test_moves_a_state_does_not_allow_are_refused(state: CaseState, move: str) -> None:
    with pytest.raises(TransitionError):
        next_state(state, move)


def test_priority_rises_but_never_falls() -> None:
    assert raises_priority(Priority.URGENT, Priority.NORMAL)
    assert not raises_priority(Priority.NORMAL, Priority.HIGH)
    assert not raises_priority(Priority.HIGH, Priority.HIGH)
    assert Priority.parse("nonsense") is Priority.NORMAL


@pytest.mark.parametrize(
    "data", ["case:claim:", "case:claim:01", "case:claim:-1", "case:claim:1 ", "xcase:claim:1", None, ""]
)
def test_callback_data_must_parse_exactly(data: str | None) -> None:
    assert parse_case_button(data) is None


def test_callback_data_round_trips() -> None:
    assert parse_case_button(case_button("close", 42)) == ("close", 42)
    assert parse_feedback_button("rate:42:5") == (42, 5)
    assert parse_feedback_button("rate:42:6") is None


def test_a_moderators_message_goes_to_the_replied_case_or_the_only_one_held() -> None:
    assert pick_case([7], None) == 7
    assert pick_case([7, 9], 9) == 9
    for held, replied in (([], None), ([7, 9], None), ([7], 9)):
        with pytest.raises(TargetError):
            pick_case(held, replied)


def test_moderators_hours_are_uk_time_and_may_cross_midnight() -> None:
    summer_evening = dt.datetime(2026, 7, 1, 21, 30, tzinfo=dt.UTC)  # 22:30 BST
    assert not Hours.parse("09:00-22:00").on_duty(summer_evening)
    assert Hours.parse("18:00-02:00").on_duty(summer_evening)
    assert Hours.parse("").on_duty(summer_evening)
    with pytest.raises(ValueError, match="HH:MM"):
        Hours.parse("9am to 5pm")


def test_waiting_time_reads_the_way_moderators_say_it() -> None:
    assert waited(T0, T0 + dt.timedelta(minutes=4, seconds=50)) == "4 min"
    assert waited(T0, T0 + dt.timedelta(minutes=65)) == "1 h 05 min"


@pytest.mark.parametrize("why", list(NoTarget))
def test_every_reason_a_message_reaches_no_case_is_worded_for_the_moderator(why: NoTarget) -> None:
    answer = cards.no_target(TargetError(why, [3, 1]))
    assert answer.endswith("Nothing was sent.")
    if why is NoTarget.SEVERAL_HELD:
        assert "(#1, #3)" in answer

"""Handover cases as explicit state and rules: no Telegram types and no database here (README, "Handover").

```
queued ──claim──▶ claimed ──close──▶ closed
   │  ◀──release──┘ │  ▲
   │  ◀──requeue──┘ └──┘ takeover
   └──────────close─────────────────▶ closed
```
`release` is the holder giving the case back; `requeue` is the adapter doing it for a holder who is no
longer on MODERATOR_USER_IDS or can't be reached; `takeover` moves a claimed case to another moderator.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Sequence, Set
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from actions.handover_signal import PRIORITY_ORDER, Priority, raises_priority

__all__ = [  # Priority is defined once, with the handover signal; the adapter's modules import it here
    "PRIORITY_ORDER",
    "Priority",
    "raises_priority",
]

UK_TIME = ZoneInfo("Europe/London")


class CaseState(enum.StrEnum):
    """Where a case is: waiting for a moderator, held by one, or finished."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    CLOSED = "closed"


class Move(enum.StrEnum):
    """A recorded move of a case: the moderators' and the adapter's moves, and opening and raising it."""

    OPEN = "open"
    RAISE = "raise"
    CLAIM = "claim"
    RELEASE = "release"
    REQUEUE = "requeue"
    TAKEOVER = "takeover"
    CLOSE = "close"


class Sender(enum.StrEnum):
    """Who a line of a case's transcript is from (a note is a moderator's, private to moderators)."""

    USER = "user"
    MODERATOR = "moderator"
    NOTE = "note"
    SYSTEM = "system"


# What each move is called, and where it may start. Every move is recorded with a time and who did it.
TRANSITIONS: dict[Move, tuple[frozenset[CaseState], CaseState]] = {
    Move.CLAIM: (frozenset({CaseState.QUEUED}), CaseState.CLAIMED),
    Move.RELEASE: (frozenset({CaseState.CLAIMED}), CaseState.QUEUED),
    Move.REQUEUE: (frozenset({CaseState.CLAIMED}), CaseState.QUEUED),
    Move.TAKEOVER: (frozenset({CaseState.CLAIMED}), CaseState.CLAIMED),
    Move.CLOSE: (frozenset({CaseState.QUEUED, CaseState.CLAIMED}), CaseState.CLOSED),
}
# The moves a case card's buttons (and the matching commands) make.
CARD_MOVES = (Move.CLAIM, Move.CLOSE, Move.TAKEOVER)


class TransitionError(Exception):
    """A move that this case's state does not allow (a stale button, a second claim)."""


class NotHolderError(TransitionError):
    """A move on a claimed case by someone other than the moderator it needs to be held by."""

    def __init__(self, number: int, holder_name: str | None) -> None:
        super().__init__(f"case #{number} is held by someone else")
        self.holder_name = holder_name


class HolderGone(enum.StrEnum):
    """Why the adapter gives a claimed case back to the queue (logged and told to the group)."""

    NOT_A_MODERATOR = "not on MODERATOR_USER_IDS"
    UNREACHABLE = "unreachable"


def holder_gone(holder: int | None, allowlist: frozenset[int], unreachable: Set[int]) -> HolderGone | None:
    """Return why a claimed case's holder can no longer carry it, or None if they still can."""
    if not is_moderator(holder, allowlist):
        return HolderGone.NOT_A_MODERATOR
    if holder in unreachable:
        return HolderGone.UNREACHABLE
    return None


def next_state(current: CaseState, move: Move) -> CaseState:
    """Return the state after a move, or raise TransitionError if the move is not allowed now."""
    try:
        move = Move(move)
        sources, target = TRANSITIONS[move]
    except (KeyError, ValueError):
        raise TransitionError(f"unknown move {move!r}") from None
    if current not in sources:
        raise TransitionError(f"cannot {move.value} a {current.value} case")
    return target


def is_moderator(user_id: int | None, allowlist: frozenset[int]) -> bool:
    """Return True only for a Telegram user id on MODERATOR_USER_IDS."""
    return user_id is not None and user_id in allowlist


# Callback data is never trusted: it must parse exactly, and what it names is checked against the database.
_CASE_BUTTON = re.compile(rf"case:({'|'.join(m.value for m in CARD_MOVES)}):([1-9][0-9]{{0,11}})")
_FEEDBACK_BUTTON = re.compile(r"rate:([1-9][0-9]{0,11}):([1-5])")


def case_button(move: Move, number: int) -> str:
    """Return the callback data of a case card's Claim, Take over or Close button."""
    return f"case:{Move(move).value}:{number}"


def parse_case_button(data: str | None) -> tuple[Move, int] | None:
    """Return (move, case number) for well-formed case-card data, else None."""
    match = _CASE_BUTTON.fullmatch(data or "")
    return (Move(match.group(1)), int(match.group(2))) if match else None


def feedback_button(number: int, score: int) -> str:
    """Return the callback data of a "how did it go" button."""
    return f"rate:{number}:{score}"


def parse_feedback_button(data: str | None) -> tuple[int, int] | None:
    """Return (case number, score 1–5) for well-formed feedback data, else None."""
    match = _FEEDBACK_BUTTON.fullmatch(data or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class NoTarget(enum.StrEnum):
    """Why a moderator's message could not be matched to one case (cards.no_target words it)."""

    NOT_A_CASE = "not a case"  # they replied to a message that isn't a case's
    NOT_HELD = "not held"  # they replied to a line of a case they don't hold now
    NONE_HELD = "none held"
    SEVERAL_HELD = "several held"  # and they didn't reply to say which


class TargetError(Exception):
    """A moderator's message could not be matched to one case: why, and the cases they hold."""

    def __init__(self, why: NoTarget, held: Sequence[int] = ()) -> None:
        super().__init__(why.value)
        self.why = why
        self.held = tuple(sorted(held))


def pick_case(held: Sequence[int], replied_to: int | None) -> int:
    """Return the case a moderator's message is for: the replied-to case, else the only one they hold."""
    if replied_to is not None:
        if replied_to not in held:
            raise TargetError(NoTarget.NOT_HELD, held)
        return replied_to
    if not held:
        raise TargetError(NoTarget.NONE_HELD)
    if len(held) > 1:
        raise TargetError(NoTarget.SEVERAL_HELD, held)
    return held[0]


@dataclass(frozen=True)
class Hours:
    """When moderators are on duty, in UK time; None means at all hours."""

    start: dt.time | None = None
    end: dt.time | None = None

    @classmethod
    def parse(cls, value: str) -> Hours:
        """Return hours from "HH:MM-HH:MM" (UK time; may cross midnight), or all hours for ""."""
        value = value.strip()
        if not value:
            return cls()
        match = re.fullmatch(r"([0-2]?\d):([0-5]\d)\s*-\s*([0-2]?\d):([0-5]\d)", value)
        if not match:
            raise ValueError(f"expected HH:MM-HH:MM, got {value!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or (h2 == 24 and m2):
            raise ValueError(f"not a time of day in {value!r}")
        end = dt.time(23, 59, 59) if h2 == 24 else dt.time(h2, m2)
        return cls(dt.time(h1, m1), end)

    def on_duty(self, now: dt.datetime) -> bool:
        """Return True if moderators are on duty at this moment."""
        if self.start is None or self.end is None:
            return True
        local = now.astimezone(UK_TIME).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def waited(opened_at: dt.datetime, now: dt.datetime) -> str:
    """Return how long a case has waited, the way a moderator reads it ("4 min", "1 h 05 min")."""
    minutes = max(0, int((now - opened_at).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"

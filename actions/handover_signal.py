"""The handover signal: the custom payload in Rasa's reply that asks the adapter for a person.

One definition for both sides of the process boundary: `action_request_handover` (actions/handover.py)
writes it, and the adapter parses it once, at its edge (bot/rasa_client.py), into a `HandoverRequest`.
Priority is defined here only: the queue order in the database, the adapter's "raise a case" rule and the
action's "signal again" rule all read `Priority.rank`.

    {"handover": {"priority": "urgent" | "high" | "normal", "reason": "<intent or cause>"}}
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

KEY = "handover"
FIELDS = frozenset({"priority", "reason"})
MAX_REASON_CHARS = 64  # handover_case.reason is a String(64)


class Priority(enum.StrEnum):
    """How soon a person is needed: danger now, a disclosure, or someone asked for a person."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"

    @property
    def rank(self) -> int:
        """Return a number that sorts the most urgent first (0 = urgent)."""
        return PRIORITY_ORDER.index(self)

    @classmethod
    def parse(cls, value: str) -> Priority:
        """Return the priority named, or normal for anything unknown (a person is still wanted)."""
        try:
            return cls(value)
        except ValueError:
            return cls.NORMAL


# The one order: most urgent first.
PRIORITY_ORDER = (Priority.URGENT, Priority.HIGH, Priority.NORMAL)


def raises_priority(new: Priority, current: Priority | None) -> bool:
    """Return True if a new request for a person is more urgent than the one already made (None: none)."""
    return current is None or new.rank < current.rank


class PayloadError(ValueError):
    """A handover signal that is not of the agreed shape (it is not acted on; the reason is logged)."""


@dataclass(frozen=True)
class HandoverRequest:
    """A request for a person: how urgent, and why (Rasa's intent, or the adapter's own cause)."""

    priority: Priority
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "priority", Priority(self.priority))

    def payload(self) -> dict[str, dict[str, str]]:
        """Return the custom payload the adapter reads."""
        return {KEY: {"priority": self.priority.value, "reason": self.reason}}

    @classmethod
    def parse(cls, custom: Mapping[str, object] | None) -> HandoverRequest | None:
        """Return the request a custom payload carries; None if it carries none.

        Raises PayloadError if it names a handover of the wrong shape: not an object, a field that is not
        a string, an unknown field, or a reason too long to keep. An unknown priority name is read as
        normal, as `Priority.parse` does: a person was still asked for.
        """
        if not custom or KEY not in custom:
            return None
        signal = custom[KEY]
        if not isinstance(signal, Mapping):
            raise PayloadError(f"{KEY} is a {type(signal).__name__}, not an object")
        unknown = set(signal) - FIELDS
        if unknown:
            raise PayloadError(f"{KEY} has unknown fields: {', '.join(sorted(map(str, unknown)))}")
        priority, reason = signal.get("priority", ""), signal.get("reason", "")
        if not isinstance(priority, str) or not isinstance(reason, str):
            raise PayloadError(f"{KEY}'s priority and reason must be strings")
        if len(reason) > MAX_REASON_CHARS:
            raise PayloadError(f"{KEY}'s reason is longer than {MAX_REASON_CHARS} characters")
        return cls(Priority.parse(priority), reason)

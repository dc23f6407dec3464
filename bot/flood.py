"""Per-person flood control: a token bucket per pseudonym, and strikes for flooding again and again.

Pure rules, no Telegram and no database (like escalation.py). The relay holds what a flooding person
sends and works through it at the steady rate, so nothing they write is lost; it answers kindly once per
flood, and when someone floods repeatedly it asks moderators to look.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

REMEMBERED_PEOPLE = 10_000


@dataclass(frozen=True)
class Limits:
    """How fast one person may write before their messages are held and paced."""

    burst: int = 10  # messages at once (a few quick lines, or a pasted story, are normal)
    per_minute: float = 20.0  # the steady rate after the burst
    strikes: int = 3  # floods within `strike_window_seconds` before moderators are asked to look
    strike_window_seconds: float = 3600.0


class Verdict(enum.Enum):
    """What to do with one message."""

    GO = "go"  # handle it now
    SLOW_DOWN = "slow_down"  # hold it, and tell the person (the first message over the limit)
    HOLD = "hold"  # hold it quietly (already told)
    ALERT = "alert"  # hold it, tell the person, and ask moderators to look (repeated flooding)


@dataclass
class _Bucket:
    tokens: float
    updated: float
    flooding: bool = False
    strikes: deque[float] = field(default_factory=deque)
    alerted_at: float | None = None


class FloodGuard:
    """Decides, per pseudonym, whether a message is handled now or held and paced."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, ref: str, now: float) -> Verdict:
        """Take a token for a new message, or say how to hold it."""
        bucket = self._bucket(ref, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.flooding = False
            return Verdict.GO
        if bucket.flooding:
            return Verdict.HOLD
        bucket.flooding = True
        window = self.limits.strike_window_seconds
        bucket.strikes.append(now)
        while bucket.strikes and bucket.strikes[0] < now - window:
            bucket.strikes.popleft()
        recently_alerted = bucket.alerted_at is not None and bucket.alerted_at > now - window
        if len(bucket.strikes) >= self.limits.strikes and not recently_alerted:
            bucket.alerted_at = now
            return Verdict.ALERT
        return Verdict.SLOW_DOWN

    def take(self, ref: str, now: float) -> bool:
        """Take a token to handle a held message; False if the person must wait longer."""
        bucket = self._bucket(ref, now)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def forget(self, ref: str) -> None:
        """Drop what is known about a person (they asked to be forgotten)."""
        self._buckets.pop(ref, None)

    def knows(self, ref: str) -> bool:
        """Return whether a bucket is kept for the person."""
        return ref in self._buckets

    def _bucket(self, ref: str, now: float) -> _Bucket:
        bucket = self._buckets.get(ref)
        if bucket is None:
            if len(self._buckets) >= REMEMBERED_PEOPLE:
                self._prune(now)
            bucket = self._buckets[ref] = _Bucket(tokens=float(self.limits.burst), updated=now)
            return bucket
        rate = self.limits.per_minute / 60.0
        bucket.tokens = min(float(self.limits.burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket

    def _prune(self, now: float) -> None:
        """Forget people who are calm again: a full bucket and no strikes in the window."""
        window = self.limits.strike_window_seconds
        rate = self.limits.per_minute / 60.0
        for ref, bucket in list(self._buckets.items()):
            full = bucket.tokens + (now - bucket.updated) * rate >= self.limits.burst
            if full and not any(t > now - window for t in bucket.strikes):
                del self._buckets[ref]

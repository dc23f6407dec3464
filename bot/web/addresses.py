"""The web chat's limit per address: a token bucket per keyed hash of the address, never the address.

- In memory (`MemoryAddresses`): one adapter's own buckets (bot/flood.py's rules), hashed with a key made
  at start that is never written anywhere.
- In Redis (`RedisAddresses`, when `REDIS_URL` is set): one bucket per address shared by every adapter, so
  K adapters behind one URL don't allow an address K times the limit. A bucket is a Redis hash under
  `signpost:web:address:<HMAC-SHA256 of the address>`, changed by one Lua script (atomic, on Redis's own
  clock) and expiring once it would be full again (burst ÷ rate, about half a minute). The HMAC's key is
  derived from `PSEUDONYM_KEY`, which every adapter shares and Redis never sees: an address can't be
  found from its bucket's name without it (hashed without a key, all IPv4 addresses could be tried).
  If Redis doesn't answer (within `REDIS_TIMEOUT_SECONDS`), the adapter falls back to its own buckets
  and tries Redis again after `RETRY_SECONDS`: a person in crisis is never turned away because Redis is
  down.

The client is redis-py's asyncio client (`redis.asyncio`); the script is registered with it, so it runs
by its SHA and is loaded again when Redis restarts (EVALSHA, then EVAL on NOSCRIPT).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import time
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bot.flood import FloodGuard, Limits

logger = logging.getLogger(__name__)

PREFIX = "signpost:web:address:"
REDIS_TIMEOUT_SECONDS = 0.5  # a request waits this long for Redis at most, then the adapter decides alone
RETRY_SECONDS = 5.0  # after Redis failed, the adapter's own buckets decide this long before it is tried again
WARN_EVERY_SECONDS = 60.0

# KEYS[1] the bucket; ARGV burst, tokens a second, seconds to keep it. Returns 1 if a token was taken.
TAKE = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return taken
"""


class AddressLimit(Protocol):
    """Takes a token for an address's request that changes something."""

    limits: Limits

    async def take(self, host: str) -> bool:
        """Take one of the address's tokens; False if it must wait."""
        ...

    async def close(self) -> None:
        """Let go of what the limit holds open."""
        ...


class MemoryAddresses:
    """This adapter's own buckets, keyed by an HMAC of the address under a key made at start."""

    def __init__(self, limits: Limits, key: bytes | None = None) -> None:
        self.limits = limits
        self._key = key or secrets.token_bytes(32)
        self._guard = FloodGuard(limits)

    def ref(self, host: str) -> str:
        """Return the keyed hash that stands for an address."""
        return hmac.new(self._key, host.encode(), hashlib.sha256).hexdigest()

    async def take(self, host: str) -> bool:
        return self._guard.take(self.ref(host), time.monotonic())

    async def close(self) -> None:
        return None


class RedisAddresses:
    """Every adapter's shared buckets in Redis; this adapter's own buckets while Redis doesn't answer."""

    def __init__(
        self, redis: Redis, limits: Limits, key: bytes, prefix: str = PREFIX, clock: Any = time.monotonic
    ) -> None:
        self.redis = redis
        self._script = redis.register_script(TAKE)
        self.limits = limits
        self.prefix = prefix
        # The same on every adapter (from PSEUDONYM_KEY), so one address has one bucket.
        self._key = hmac.new(key, b"web-address-limit", hashlib.sha256).digest()
        self.fallback = MemoryAddresses(limits)
        self._clock = clock
        self._down_until = 0.0
        self._warned_at = -math.inf
        self._keep_seconds = math.ceil(limits.burst / (limits.per_minute / 60.0)) + 1

    def ref(self, host: str) -> str:
        """Return the name of the address's bucket (a keyed hash; the address itself is never sent)."""
        return self.prefix + hmac.new(self._key, host.encode(), hashlib.sha256).hexdigest()

    async def take(self, host: str) -> bool:
        now = self._clock()
        if now < self._down_until:
            return await self.fallback.take(host)
        args = [self.limits.burst, self.limits.per_minute / 60.0, self._keep_seconds]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                taken = await self._script(keys=[self.ref(host)], args=args)
        except (OSError, TimeoutError, RedisError) as exc:
            self._down_until = now + RETRY_SECONDS
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.warning(
                    "web chat: Redis did not answer (%s); until it does, each adapter limits addresses alone",
                    type(exc).__name__,
                )
            return await self.fallback.take(host)
        return bool(taken)

    async def close(self) -> None:
        await self.redis.aclose()


def connect(url: str) -> Redis:
    """Return a client for REDIS_URL that gives up within REDIS_TIMEOUT_SECONDS and never retries: the
    adapter decides alone rather than keep a person waiting."""
    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def address_limit(redis_url: str | None, limits: Limits, key: bytes) -> AddressLimit:
    """Return the per-address limit: shared in Redis when REDIS_URL is set, this adapter's own otherwise."""
    if redis_url:
        return RedisAddresses(connect(redis_url), limits, key)
    return MemoryAddresses(limits)

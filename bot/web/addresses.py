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

The Redis client is the few lines of RESP2 these two commands need (EVALSHA, and AUTH and SELECT at
connection), so the adapter adds no package.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import ssl
import time
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

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
TAKE_SHA = hashlib.sha1(TAKE.encode(), usedforsecurity=False).hexdigest()


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


class RedisError(Exception):
    """Redis answered with an error, or with something this client does not read."""


class Redis:
    """One connection to Redis, one command at a time (a lock), opened again after any failure."""

    def __init__(self, url: str, timeout: float = REDIS_TIMEOUT_SECONDS) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in {"redis", "rediss"}:
            raise ValueError("a Redis URL starts with redis:// or rediss://")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.tls = parsed.scheme == "rediss"
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.db = int(parsed.path.strip("/") or 0)
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def command(self, *args: str | int | float) -> Any:
        """Send one command and return its reply (RedisError for an error reply, OSError/TimeoutError if
        Redis can't be reached in time; the connection is then dropped and opened again next time)."""
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    reader, writer = await self._connected()
                    return await self._call(reader, writer, args)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, RedisError):
                await self._drop()
                raise

    async def _connected(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            context = ssl.create_default_context() if self.tls else None
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=context)
            self._streams = reader, writer
            if self.password is not None:
                login = (self.username, self.password) if self.username else (self.password,)
                await self._call(reader, writer, ("AUTH", *login))
            if self.db:
                await self._call(reader, writer, ("SELECT", self.db))
        return self._streams

    async def _call(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, args: tuple[str | int | float, ...]
    ) -> Any:
        parts = [str(a).encode() for a in args]
        writer.write(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        await writer.drain()
        return await _reply(reader)

    async def _drop(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            await self._drop()


async def _reply(reader: asyncio.StreamReader) -> Any:
    """Read one RESP2 reply."""
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else (await reader.readexactly(size + 2))[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [await _reply(reader) for _ in range(count)]
    raise RedisError("an answer this client does not read")


class RedisAddresses:
    """Every adapter's shared buckets in Redis; this adapter's own buckets while Redis doesn't answer."""

    def __init__(
        self, redis: Redis, limits: Limits, key: bytes, prefix: str = PREFIX, clock: Any = time.monotonic
    ) -> None:
        self.redis = redis
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
        args = (self.ref(host), self.limits.burst, self.limits.per_minute / 60.0, self._keep_seconds)
        try:
            try:
                taken = await self.redis.command("EVALSHA", TAKE_SHA, 1, *args)
            except RedisError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                taken = await self.redis.command("EVAL", TAKE, 1, *args)  # loads it for the next EVALSHA
        except (OSError, TimeoutError, asyncio.IncompleteReadError, RedisError, ValueError) as exc:
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
        await self.redis.close()


def address_limit(redis_url: str | None, limits: Limits, key: bytes) -> AddressLimit:
    """Return the per-address limit: shared in Redis when REDIS_URL is set, this adapter's own otherwise."""
    if redis_url:
        return RedisAddresses(Redis(redis_url), limits, key)
    return MemoryAddresses(limits)

"""A small round-robin HTTP reverse proxy for end-to-end tests, served by aiohttp on loopback.

It stands where nginx would, in front of several adapter instances in webhook mode: each request goes
to the next upstream in turn, with its method, path, query, headers (the Telegram secret-token header
among them) and body; the upstream's status, headers and body come back. If an upstream can't be
connected to, the request goes to the next one, as nginx's ``proxy_next_upstream error`` does; once a
request has been sent it is never sent again (nginx doesn't resend a POST either): a failure after that
is answered 502, and the caller (Telegram) retries. With no upstream reachable the answer is 502 too.

:meth:`RoundRobinProxy.drop_next_answers` loses upstream answers on the way back (the upstream handled
the request, the caller gets 504), as when an answer comes after nginx's ``proxy_read_timeout`` or the
connection breaks: Telegram then delivers the same update again. :meth:`RoundRobinProxy.delay_requests`
holds each request that long before passing it on: a slow upstream.

    with RoundRobinProxy(["http://127.0.0.1:8001", "http://127.0.0.1:8002"]) as proxy:
        fake.webhook_via = proxy.base_url
        ...
        assert all(proxy.answered(u) for u in proxy.upstreams)

Every attempt is recorded (:class:`Forwarded`). Like the fake Bot API, it runs its own event loop in a
background thread, and its methods are thread-safe.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from tests.e2e.loopback import LoopbackServer

# Headers that describe one connection, not the message; a proxy does not pass them on (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Recomputed for the new message (the Host of the upstream, the length of the body as sent).
_RECOMPUTED = frozenset({"host", "content-length"})
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Forwarded:
    """One attempt to pass a request to an upstream: the upstream's status, or why it failed."""

    upstream: str
    method: str
    path: str
    at: float
    status: int | None = None
    error: str | None = None
    dropped: bool = False  # the upstream answered, but the caller got 504 (drop_next_answers)


class RoundRobinProxy(LoopbackServer):
    """A reverse proxy on 127.0.0.1 that spreads requests over ``upstreams`` (base URLs) in turn."""

    label = "the proxy"

    def __init__(
        self, upstreams: Sequence[str], host: str = "127.0.0.1", timeout: float = TIMEOUT_SECONDS
    ) -> None:
        if not upstreams:
            raise ValueError("a proxy needs at least one upstream")
        super().__init__(host)
        self.upstreams = tuple(u.rstrip("/") for u in upstreams)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._turn = 0
        self._drop = 0
        self._delay = 0.0
        self._log: list[Forwarded] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: where the proxy listens."""
        return f"http://{self.host}:{self.port}"

    async def _startup(self, sock: socket.socket) -> None:
        # No automatic decompression: the body and its Content-Encoding go back as the upstream sent them.
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ inspect

    def log(self) -> list[Forwarded]:
        """Every attempt to pass a request on, oldest first."""
        with self._lock:
            return list(self._log)

    def answered(self, upstream: str) -> int:
        """How many requests the upstream answered (any status)."""
        return sum(1 for f in self.log() if f.upstream == upstream.rstrip("/") and f.status is not None)

    def counts(self) -> dict[str, int]:
        """Requests answered per upstream."""
        return {upstream: self.answered(upstream) for upstream in self.upstreams}

    def drop_next_answers(self, times: int = 1) -> None:
        """Pass the next ``times`` requests on as usual, but answer the caller 504 instead of the
        upstream's answer: the upstream did the work, the caller doesn't know it."""
        with self._lock:
            self._drop += times

    def delay_requests(self, seconds: float) -> None:
        """Hold every request from now on ``seconds`` before passing it on (0: pass at once again)."""
        with self._lock:
            self._delay = seconds

    def _take_drop(self) -> bool:
        with self._lock:
            if self._drop <= 0:
                return False
            self._drop -= 1
            return True

    # ------------------------------------------------------------------ HTTP side

    def _order(self) -> list[str]:
        """The upstreams to try for the next request: the next in turn first, then the rest in order."""
        with self._lock:
            first = self._turn % len(self.upstreams)
            self._turn += 1
        return [self.upstreams[(first + i) % len(self.upstreams)] for i in range(len(self.upstreams))]

    def _record(self, forwarded: Forwarded) -> None:
        with self._lock:
            self._log.append(forwarded)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            delay = self._delay
        if delay:
            await asyncio.sleep(delay)
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() not in _RECOMPUTED
        }
        headers["X-Forwarded-For"] = request.remote or ""
        headers["X-Forwarded-Proto"] = "https"  # the proxy stands for the TLS end
        path = request.path_qs
        session = self._session
        assert session is not None
        for upstream in self._order():
            try:
                async with session.request(
                    request.method,
                    upstream + path,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as response:
                    answer = await response.read()
                    dropped = self._take_drop()
                    self._record(
                        Forwarded(
                            upstream, request.method, path, time.time(), response.status, dropped=dropped
                        )
                    )
                    if dropped:
                        return web.Response(status=504, text="the upstream's answer was lost")
                    kept = {
                        name: value
                        for name, value in response.headers.items()
                        if name.lower() not in _HOP_BY_HOP and name.lower() not in _RECOMPUTED
                    }
                    return web.Response(status=response.status, body=answer, headers=kept)
            except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent, try the next
                self._record(Forwarded(upstream, request.method, path, time.time(), error=type(exc).__name__))
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:  # sent, maybe handled: don't resend
                self._record(Forwarded(upstream, request.method, path, time.time(), error=type(exc).__name__))
                return web.Response(status=502, text=f"upstream failed: {type(exc).__name__}")
        return web.Response(status=502, text="no upstream reachable")

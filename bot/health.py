"""The adapter's health check: `GET /healthz` answered by the event loop itself, after asking the database.

A container health check that only opens a TCP connection passes while the loop is frozen (the kernel
accepts the connection). This server runs on the adapter's own loop: if the loop is stuck, nothing
answers and the check times out; if the database does not answer within `timeout`, it answers 503.
It reads nothing from the request but its first line, and says nothing about anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

PATH = "/healthz"
READ_SECONDS = 5.0
MAX_REQUEST_LINE = 1024


class HealthServer:
    """A tiny HTTP server for `GET /healthz` on the running event loop."""

    def __init__(self, probe: Callable[[], Awaitable[None]], host: str, port: int, timeout: float) -> None:
        self.probe = probe
        self.host = host
        self.port = port
        self.timeout = timeout
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Start listening (port 0: any free port, then `port` says which)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_REQUEST_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("health check on http://%s:%d%s", self.host, self.port, PATH)

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def check(self) -> tuple[int, str]:
        """Return the status and body: 200 if the database answered within the timeout, else 503."""
        try:
            await asyncio.wait_for(self.probe(), self.timeout)
        except TimeoutError:
            return 503, "database: no answer in time\n"
        except Exception as exc:  # the kind only: a health check must never leak data
            return 503, f"database: {type(exc).__name__}\n"
        return 200, "ok\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), READ_SECONDS)
            parts = line.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1] == PATH:
                status, body = await self.check()
            else:
                status, body = 404, "not found\n"
            if status != 200:
                logger.warning("health check answered %d: %s", status, body.strip())
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n{body}".encode("latin-1")
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

"""A server for end-to-end tests: aiohttp on a free 127.0.0.1 port, in its own thread and event loop.

Subclasses set up their aiohttp application in `_startup(sock)` and tear it down in `_shutdown()`;
the test side stays synchronous (`with Server() as server: ...`). Used by the fake Telegram Bot API
(`fake_telegram.py`) and the round-robin proxy (`proxy.py`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import TypeVar

START_SECONDS = 15

_Server = TypeVar("_Server", bound="LoopbackServer")


class LoopbackServer:
    """Start, stop and the port of a server running in a background thread."""

    label = "the server"  # how errors name it

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port: int | None = None
        self._startup_error: BaseException | None = None

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def _startup(self, sock: socket.socket) -> None:
        """Serve on the bound socket (in the server's loop)."""
        raise NotImplementedError

    async def _shutdown(self) -> None:
        """Close what `_startup` opened (in the server's loop)."""
        raise NotImplementedError

    def _before_start(self) -> None:
        """Reset anything a previous run left (in the caller's thread)."""

    def _before_stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let waiting requests finish before the server closes (in the caller's thread)."""

    def start(self: _Server) -> _Server:
        """Start serving on a free loopback port; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError(f"{self.label} is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self._port = sock.getsockname()[1]
        self._startup_error = None
        self._before_start()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready), name=f"{self.label}-{self._port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(START_SECONDS):
            raise RuntimeError(f"{self.label} did not start within {START_SECONDS} s")
        if self._startup_error is not None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError(f"{self.label} failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Close the server and join its thread. Safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            self._before_stop(loop)
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=15)
        except Exception:  # noqa: S110 - stopping must not fail a test's teardown
            pass
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(15)
            self._thread = None
            self._loop = None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None or self._thread is None:
            raise RuntimeError(f"{self.label} is not running: call start() or use it as a context manager")
        return self._port

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._startup(sock))
        except BaseException as exc:
            self._startup_error = exc
            sock.close()
            loop.close()
            self._loop = None
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

"""The web chat: an ASGI app (Starlette) in the adapter's event loop, a channel of the same core as Telegram.

Routes (every POST carries the page's form token; every answer says `Cache-Control: no-store` and a
Content-Security-Policy that lets nothing load from anywhere else):

- `GET /`: the page, with the conversation so far, drawn on the server (it works with JavaScript off);
- `POST /send`, `POST /press`: a message, or a button pressed. The page's script posts them and returns
  at once (the answer comes down the live feed); a plain form post waits for the answer a little while,
  then shows the page again;
- `GET /events`: the live feed (server-sent events); `GET /poll?after=N`: the same, long polling, for
  networks that break event streams;
- `POST /exit`: quick exit, as `/exit` does on Telegram, and the session ends; answers with the way out
  (EXIT_URL) and never waits for Rasa;
- `POST /forget`: "Delete my chat", as `/forget` (it asks to confirm with buttons).

Nothing here logs an address or what anyone wrote (uvicorn's access log is off: bot/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.flood import Limits
from bot.people import Person
from bot.relay import FORGET, QUICK_EXIT, Relay, command_of
from bot.responses import response_text
from bot.web.addresses import AddressLimit, MemoryAddresses
from bot.web.chats import WebChats
from bot.web.sessions import COOKIE, WebSessions

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 16 * 1024  # a message is at most a few thousand characters
MAX_MESSAGE_CHARS = 4000
FORM_WAITS_SECONDS = 8.0  # a form post without JavaScript waits this long for the answer, then shows the page
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 25.0
# Per address (hashed; in memory, or in Redis shared by every adapter): requests that change something.
ADDRESS_LIMITS = Limits(burst=30, per_minute=60)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # other sites never learn where a person came from
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]
# The page's wording lives in domain.yml with everything else people read.
PAGE_TEXTS = {
    "intro": "utter_web_intro",
    "pictures": "utter_web_pictures",
    "busy": "utter_web_busy",
}


class Guard:
    """Pure ASGI middleware: the security headers on every answer, and a cap on every request body."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self._too_large(send)
            return
        seen = 0
        started = False

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLargeError
            return message

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name for name, _ in SECURITY_HEADERS}
                message["headers"] = [
                    *(h for h in message.get("headers", []) if h[0].lower() not in names),
                    *SECURITY_HEADERS,
                ]
            await send(message)

        try:
            await self.app(scope, capped, with_headers)
        except _TooLargeError:
            if not started:
                await self._too_large(send)

    @staticmethod
    async def _too_large(send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [*SECURITY_HEADERS, (b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"Too long."})


class _TooLargeError(Exception):
    pass


class WebChat:
    """The web chat's routes, over the core (`relay`) and the web channel (`chats`)."""

    def __init__(
        self, relay: Relay, chats: WebChats, exit_url: str, addresses: AddressLimit | None = None
    ) -> None:
        self.relay = relay
        self.chats = chats
        self.exit_url = exit_url
        self.sessions = WebSessions(relay.settings.pseudonym_key)
        # Addresses are kept hashed: in this adapter's memory, or in Redis shared by every adapter.
        self.addresses = addresses or MemoryAddresses(ADDRESS_LIMITS)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self._tasks: set[asyncio.Task[None]] = set()

    def _routes(self) -> list[Route | Mount]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/send", self.send, methods=["POST"]),
            Route("/press", self.press, methods=["POST"]),
            Route("/exit", self.exit, methods=["POST"]),
            Route("/forget", self.forget, methods=["POST"]),
            Route("/events", self.events, methods=["GET"]),
            Route("/poll", self.poll, methods=["GET"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]

    @property
    def paths(self) -> frozenset[str]:
        """The paths the web chat answers (a path under /static counts as /static)."""
        return frozenset(route.path or "/" for route in self._routes())

    def app(self) -> ASGIApp:
        """Return the ASGI app."""
        return Guard(Starlette(routes=self._routes()))

    # ---------------------------------------------------------------- sessions

    def _session(self, request: Request) -> str | None:
        session_id = request.cookies.get(COOKIE)
        return session_id if self.sessions.valid(session_id) else None

    @staticmethod
    def _secure(request: Request) -> bool:
        """Cookies are Secure except on this machine (http://localhost or 127.0.0.1, for development)."""
        return (request.url.hostname or "") not in {"localhost", "127.0.0.1", "::1"}

    def _set_cookie(self, response: Response, request: Request, session_id: str) -> None:
        response.set_cookie(
            COOKIE, session_id, httponly=True, secure=self._secure(request), samesite="strict", path="/"
        )

    async def _address_ok(self, request: Request) -> bool:
        """Take one of the address's tokens for a request that changes something."""
        return await self.addresses.take(request.client.host if request.client else "unknown")

    async def _posted(self, request: Request) -> tuple[str, Person, Any] | Response:
        """Check a POST: its session, its form token and its address's rate; return them, or the refusal."""
        session_id = self._session(request)
        if session_id is None:
            return RedirectResponse("/", status_code=303)  # a new page, with a new session
        try:
            form = await request.form(max_files=0, max_fields=10)
        except Exception:  # a malformed body (the size cap is the Guard's)
            return PlainTextResponse("Bad request.", status_code=400)
        origin = request.headers.get("origin")
        if origin and urlparse(origin).netloc != request.url.netloc:
            return PlainTextResponse("Forbidden.", status_code=403)
        if not self.sessions.form_token_ok(session_id, _field(form, "token")):
            return PlainTextResponse("This page is out of date. Please reload it.", status_code=403)
        if not await self._address_ok(request):
            return PlainTextResponse(response_text(PAGE_TEXTS["busy"]), status_code=429)
        return session_id, self.sessions.person(session_id), form

    @staticmethod
    def _wants_page(request: Request) -> bool:
        """A form post without the page's script gets the page back (the script asks for no page)."""
        return request.headers.get("x-requested-with") != "signpost"

    async def _work(self, request: Request, job: Callable[[], Awaitable[None]]) -> Response:
        """Run a person's message in the core: in the background for the script (the answer comes down
        the live feed), or waited for a little while for a plain form (then the page shows it)."""
        task = asyncio.create_task(self._logged(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not self._wants_page(request):
            return Response(status_code=202)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), FORM_WAITS_SECONDS)
        return RedirectResponse("/#latest", status_code=303)

    @staticmethod
    async def _logged(job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except Exception as exc:  # never silent, never the person's words
            logger.error("web chat: a message failed: %s", type(exc).__name__)

    # ---------------------------------------------------------------- routes

    async def page(self, request: Request) -> Response:
        """The chat page, with the conversation so far."""
        session_id = self._session(request) or self.sessions.new()
        person = self.sessions.person(session_id)
        lines = self.chats.lines(person.chat_id)
        self.chats.chat(person.chat_id)
        response = self.templates.TemplateResponse(
            request,
            "chat.html",
            {
                "lines": lines,
                "token": self.sessions.form_token(session_id),
                "exit_url": self.exit_url,
                "last_id": lines[-1].id if lines else 0,
                "texts": {name: response_text(response) for name, response in PAGE_TEXTS.items()},
            },
        )
        self._set_cookie(response, request, session_id)
        return response

    async def send(self, request: Request) -> Response:
        """A person's message."""
        checked = await self._posted(request)
        if isinstance(checked, Response):
            return checked
        session_id, person, form = checked
        text = (_field(form, "message") or "").strip()[:MAX_MESSAGE_CHARS]
        if not text:
            return Response(status_code=204) if not self._wants_page(request) else RedirectResponse("/", 303)
        if command_of(text) in QUICK_EXIT:  # read as the core reads a typed command
            return await self._exit(request, session_id, person)
        self.relay.arrived(person, expects_answer=True)
        message_id = self.chats.person_wrote(person.chat_id, text)
        return await self._work(request, lambda: self.relay.user_text(person, text, message_id))

    async def press(self, request: Request) -> Response:
        """A button pressed (its data is checked by the core against what we offer)."""
        checked = await self._posted(request)
        if isinstance(checked, Response):
            return checked
        session_id, person, form = checked
        data = _field(form, "data") or ""
        title = _field(form, "title") or self._title_of(person.chat_id, data)
        if data in QUICK_EXIT:
            return await self._exit(request, session_id, person)
        self.relay.arrived(person, expects_answer=True)
        if title:
            self.chats.person_wrote(person.chat_id, title)
        return await self._work(request, lambda: self.relay.user_button(person, data, title))

    def _title_of(self, chat_id: int, data: str) -> str | None:
        """Return the title of the latest button with this data in the chat (a plain form sends only the
        data)."""
        for line in reversed(self.chats.lines(chat_id)):
            for title, pressed in line.buttons:
                if pressed == data:
                    return title
        return None

    async def forget(self, request: Request) -> Response:
        """ "Delete my chat": the core asks to confirm, as /forget does."""
        checked = await self._posted(request)
        if isinstance(checked, Response):
            return checked
        _, person, _ = checked
        self.relay.arrived(person, expects_answer=True)
        return await self._work(request, lambda: self.relay.user_text(person, FORGET))

    async def exit(self, request: Request) -> Response:
        """Exit this page: the way out at once; the session and its conversation end as /exit does.

        Never refused for its rate, and never waits for Rasa. With a stale or missing token the session
        is still left (the cookie is cleared), but nothing is asked of the core.
        """
        session_id = self._session(request)
        if session_id is None:
            return self._way_out(request)
        try:
            token = _field(await request.form(max_files=0, max_fields=10), "token")
        except Exception:
            token = None
        if not self.sessions.form_token_ok(session_id, token):
            return self._way_out(request)
        return await self._exit(request, session_id, self.sessions.person(session_id))

    async def _exit(self, request: Request, session_id: str, person: Person) -> Response:
        self.relay.arrived(person, expects_answer=False)
        self.sessions.end(session_id)
        try:
            await self.relay.leaving.quick_exit(person, None)
        finally:
            self.chats.end(person.chat_id)
        return self._way_out(request)

    def _way_out(self, request: Request) -> Response:
        response: Response = (
            RedirectResponse(self.exit_url, status_code=303)
            if self._wants_page(request)
            else Response(status_code=204)
        )
        response.delete_cookie(
            COOKIE, path="/", secure=self._secure(request), httponly=True, samesite="strict"
        )
        return response

    async def events(self, request: Request) -> Response:
        """The live feed: what the core says in this chat from now on (and since `after`)."""
        session_id = self._session(request)
        if session_id is None:
            return PlainTextResponse("", status_code=204)  # the event source stops retrying
        chat_id = self.sessions.person(session_id).chat_id
        after = _int(request.query_params.get("after")) or _int(request.headers.get("last-event-id"))
        queue = self.chats.listen(chat_id)

        async def stream() -> AsyncIterator[str]:
            try:
                for line in self.chats.lines(chat_id, after):
                    yield _sse(line.event())
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                    except TimeoutError:
                        yield ": still here\n\n"
                        continue
                    yield _sse(event)
                    if event["type"] in {"end", "reload"}:
                        return
            finally:
                self.chats.unlisten(chat_id, queue)

        # Each event at once, also through a proxy that would buffer it (nginx honours this header).
        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )

    async def poll(self, request: Request) -> Response:
        """Long polling, for networks that break event streams: lines after `after`, or wait for some."""
        session_id = self._session(request)
        if session_id is None:
            return JSONResponse({"events": [{"type": "end"}]})
        chat_id = self.sessions.person(session_id).chat_id
        after = _int(request.query_params.get("after"))
        waiting = [line.event() for line in self.chats.lines(chat_id, after)]
        if waiting:
            return JSONResponse({"events": waiting})
        queue = self.chats.listen(chat_id)
        try:
            event = await asyncio.wait_for(queue.get(), POLL_SECONDS)
        except TimeoutError:
            return JSONResponse({"events": []})
        finally:
            self.chats.unlisten(chat_id, queue)
        return JSONResponse({"events": [event]})

    async def done(self) -> None:
        """Wait for messages still in the core (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))


def _field(form: Any, name: str) -> str | None:
    value = form.get(name) if hasattr(form, "get") else None
    return value if isinstance(value, str) else None


def _int(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() else 0


def _sse(event: dict[str, Any]) -> str:
    ident = f"id: {event['id']}\n" if event.get("type") == "line" else ""
    return f"{ident}data: {json.dumps(event, ensure_ascii=False)}\n\n"

"""The composition root: `build_application(settings)` wires Telegram, the core (bot/relay.py), Rasa and
the database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from telegram import Update
from telegram.constants import ChatType
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from actions.db import sessionmaker_for
from bot.channel import ByChat
from bot.handlers import RELAY, moderator, person_of, relay_of, user
from bot.handlers.errors import on_error
from bot.health import HealthServer
from bot.outbox import TelegramOutbox
from bot.rasa_client import RasaClient
from bot.ratelimit import ChatRateLimiter
from bot.relay import Relay, assemble
from bot.settings import Settings
from bot.store import utcnow
from bot.web.addresses import address_limit
from bot.web.app import ADDRESS_LIMITS, Guard, WebChat
from bot.web.chats import WebChats

logger = logging.getLogger(__name__)

CHECK_WAITING_SECONDS = 30
RETRY_PENDING_SECONDS = 2
FLUSH_CARDS_SECONDS = 2  # cards owed to the moderators' group go out as soon as its limit allows
PURGE_SECONDS = 3600
RATE_LIMIT_RETRIES = 5  # a private chat's 429 is waited out this often (a group's is never waited out)
CONCURRENT_UPDATES = 256
HEALTH = "health"
HEALTH_DATABASE_SECONDS = 3.0  # /healthz fails if the database takes longer to answer SELECT 1


def handlers(settings: Settings) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, object]]:
    """Return the handlers in the order they are tried (the first that matches an update wins)."""
    private = filters.ChatType.PRIVATE
    moderators = filters.User(user_id=settings.moderator_user_ids)
    group = filters.Chat(chat_id=settings.moderator_chat_id) if settings.moderator_chat_id else None
    new, edited = filters.UpdateType.MESSAGE, filters.UpdateType.EDITED_MESSAGE
    media = (
        filters.PHOTO
        | filters.VIDEO
        | filters.VOICE
        | filters.VIDEO_NOTE
        | filters.ANIMATION
        | filters.Document.ALL
        | filters.Sticker.ALL
        | filters.AUDIO
    )
    personal = filters.LOCATION | filters.VENUE | filters.CONTACT
    queue_chats = (group | (private & moderators)) if group else (private & moderators)
    return [
        # 1. Card buttons, by their data's shape; the relay checks who pressed and the case's state.
        CallbackQueryHandler(moderator.on_card_button, pattern=r"^case:"),
        # 2. Every other press: a person's ratings and Rasa's payloads, checked against what we offer.
        CallbackQueryHandler(user.on_button),
        # 3. Moderators' commands come before any text handler, or they would be read as messages.
        CommandHandler("queue", moderator.on_queue, filters=queue_chats),
        CommandHandler("claim", moderator.on_claim, filters=private & moderators),
        CommandHandler("close", moderator.on_close, filters=private & moderators),
        CommandHandler("release", moderator.on_release, filters=private & moderators),
        CommandHandler("takeover", moderator.on_takeover, filters=private & moderators),
        CommandHandler("note", moderator.on_note, filters=private & moderators),
        CommandHandler("block", moderator.on_block, filters=private & moderators),
        CommandHandler("unblock", moderator.on_unblock, filters=private & moderators),
        CommandHandler("blocks", moderator.on_blocks, filters=private & moderators),
        # 4. A moderator's private chat is their side of the relay, never a conversation with Rasa.
        MessageHandler(private & moderators & edited, moderator.on_edited),
        MessageHandler(private & moderators & new & filters.TEXT, moderator.on_text),
        MessageHandler(private & moderators & new, moderator.on_not_text),
        # 5. People, in private chats only (groups, including the moderators', are not conversations).
        #    Edits first: MessageHandler would otherwise treat an edit like a new message.
        MessageHandler(private & edited, user.on_edited),
        MessageHandler(private & new & filters.TEXT, user.on_text),
        MessageHandler(private & new & media, user.on_media),
        MessageHandler(private & new & personal, user.on_personal),
        MessageHandler(private & new, user.on_other),
        # 6. Everything else (group chatter, member updates, polls, …) is ignored on purpose.
        TypeHandler(Update, on_ignored),
    ]


async def once_only(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An update Telegram delivers again (it never heard our first answer) is not acted on twice."""
    relay, user, chat = relay_of(context), update.effective_user, update.effective_chat
    if user is not None:  # its place in the person's generations, before the check awaits
        person = person_of(relay, chat.id if chat is not None else user.id, user.id)
        # A person's message or press in their private chat is owed an answer in time (not a moderator's,
        # and not a membership change or other update that nobody answers).
        spoke = update.message or update.edited_message or update.callback_query
        private = chat is not None and chat.type == ChatType.PRIVATE
        relay.arrived(person, bool(spoke) and private and not relay.roster.is_moderator(user.id))
    if not await relay.first_delivery(context.bot.id, update.update_id):
        raise ApplicationHandlerStop


async def on_ignored(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Updates that are not for the bot: noted at DEBUG, nothing else."""
    kind = next((k for k, v in update.to_dict().items() if k != "update_id" and v), "unknown")
    logger.debug("ignored an update of type %s", kind)


def _job(
    work: Callable[[Relay], Awaitable[object]],
) -> Callable[[ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
    async def run(context: ContextTypes.DEFAULT_TYPE) -> None:
        await work(relay_of(context))

    return run


async def _post_init(application: Application) -> None:  # type: ignore[type-arg]
    """Open the Rasa client once for the process (closed in _post_shutdown); load the blocks in force;
    give back to the queue any case held by someone no longer on MODERATOR_USER_IDS; serve /healthz."""
    relay: Relay = application.bot_data[RELAY]
    await relay.conversation.rasa.__aenter__()
    await relay.start()
    settings = relay.settings
    if settings.health_port is not None:
        health = HealthServer(
            relay.store.ping, settings.health_listen, settings.health_port, HEALTH_DATABASE_SECONDS
        )
        await health.start()
        application.bot_data[HEALTH] = health


async def _post_shutdown(application: Application) -> None:  # type: ignore[type-arg]
    relay: Relay = application.bot_data[RELAY]
    health: HealthServer | None = application.bot_data.pop(HEALTH, None)
    if health is not None:
        await health.stop()
    await relay.board.close()
    await relay.conversation.rasa.__aexit__()
    relay.store.close()


def build_application(
    settings: Settings,
    *,
    request: BaseRequest | None = None,
    rasa_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
    web: WebChats | None = None,
) -> Application:  # type: ignore[type-arg]
    """Return the Telegram application: handlers, error handler, jobs and the relay, not yet started.

    With `web`, the core speaks through Telegram and the web chat both (each message to its chat's channel).
    """
    if not settings.telegram_bot_token:
        raise ValueError(
            "build_application needs TELEGRAM_BOT_TOKEN; without it `python -m bot` serves the web chat alone"
        )
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_base_url)
        .concurrent_updates(CONCURRENT_UPDATES)  # one slow conversation must not hold up the others
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    if settings.telegram_rate_limit:
        # Per chat: a 429 in the moderators' group (or any chat) holds that chat only (bot/ratelimit.py).
        builder = builder.rate_limiter(ChatRateLimiter(max_retries=RATE_LIMIT_RETRIES))  # type: ignore[arg-type]
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    application = builder.build()
    rasa = RasaClient(settings.rasa_url, settings.rasa_patience_seconds, transport=rasa_transport)
    # The core, its parts made once for the Telegram channel (the terminal makes its own: bot/console.py).
    telegram = TelegramOutbox(application.bot)
    relay = assemble(
        settings,
        rasa,
        telegram if web is None else ByChat(telegram, web, web.owns),
        sessionmaker_for(settings.database_url, settings.database_timeouts),
        clock,
    )
    application.bot_data[RELAY] = relay
    # Group -1 runs before the handlers, in every instance, and stops an update seen before.
    application.add_handler(TypeHandler(Update, once_only), group=-1)
    application.add_handlers(handlers(settings))
    application.add_error_handler(on_error)
    if application.job_queue is not None:
        application.job_queue.run_repeating(_job(Relay.check_waiting), CHECK_WAITING_SECONDS, first=5)
        application.job_queue.run_repeating(
            _job(Relay.retry_pending), RETRY_PENDING_SECONDS, first=RETRY_PENDING_SECONDS
        )
        application.job_queue.run_repeating(
            _job(Relay.release_held), RETRY_PENDING_SECONDS, first=RETRY_PENDING_SECONDS
        )
        application.job_queue.run_repeating(
            _job(Relay.flush_cards), FLUSH_CARDS_SECONDS, first=FLUSH_CARDS_SECONDS
        )
        application.job_queue.run_repeating(_job(Relay.purge), PURGE_SECONDS, first=60)
    return application


def run(settings: Settings) -> None:
    """Serve the web chat, and Telegram too when TELEGRAM_BOT_TOKEN is set, until stopped (a signal)."""
    asyncio.run(serve(settings))


async def serve(settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Run the web chat (uvicorn) and Telegram (long polling, or its webhook when WEBHOOK_URL is set) in
    one event loop, over one core, as python-telegram-bot's custom-webhook example runs a web server
    beside its Application. In webhook mode our own Starlette route takes Telegram's updates
    (TelegramWebhook, below): on its own server at WEBHOOK_LISTEN:WEBHOOK_PORT, or in the web chat's when
    WEBHOOK_PORT is WEB_PORT."""
    chats = WebChats()
    application = build_application(settings, web=chats) if settings.telegram_bot_token else None
    async with contextlib.AsyncExitStack() as stack:
        if application is not None:
            relay: Relay = application.bot_data[RELAY]
            await _start_telegram(application, settings)
            stack.push_async_callback(_stop_telegram, application)
        else:
            relay = await _start_web_only(settings, chats, stack)
        addresses = address_limit(settings.redis_url, ADDRESS_LIMITS, settings.pseudonym_key)
        stack.push_async_callback(addresses.close)
        chat = WebChat(relay, chats, settings.exit_url, addresses)
        web_app = chat.app()
        webhook = _webhook_of(application, settings)
        if webhook is not None and settings.webhook_port == settings.web_port:
            web_app = with_webhook(web_app, webhook, chat.paths)
        elif webhook is not None:
            logger.info("webhook on its own port %d", settings.webhook_port)
            hook_server = _QuietServer(
                _server_config(
                    webhook.app(),
                    settings.webhook_listen,
                    settings.webhook_port,
                    settings.forwarded_allow_ips,
                )
            )
            stack.push_async_callback(_stopped, hook_server, await _started(hook_server))
        server = uvicorn.Server(
            _server_config(web_app, settings.web_host, settings.web_port, settings.forwarded_allow_ips)
        )
        housekeeping = asyncio.create_task(_drop_idle_chats(chats))
        stack.callback(housekeeping.cancel)
        serving = await _started(server)  # catches SIGINT and SIGTERM: serving ends on either
        if webhook is not None and application is not None:
            await _set_webhook(application, settings)  # once we listen: Telegram posts at once
        print(f"Signpost web chat: http://{settings.web_host}:{settings.web_port}/", flush=True)
        if ready is not None:
            ready()
        await serving
        await chat.done()


def _server_config(app: Any, host: str, port: int, forwarded_allow_ips: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # The client's address (the per-address limit counts it) from X-Forwarded-For, only when the
        # request comes from one of these proxies.
        forwarded_allow_ips=forwarded_allow_ips,
        access_log=False,  # an access log would keep people's addresses
        log_level="warning",
        lifespan="off",
        server_header=False,
        ws="none",  # no WebSockets: the live feed is server-sent events
        timeout_graceful_shutdown=5,  # open live feeds would otherwise hold a shutdown up for ever
    )


class _QuietServer(uvicorn.Server):
    """A second server in the loop: it leaves the signals to the first, and stops when told to."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _started(server: uvicorn.Server) -> asyncio.Task[None]:
    """Start a server in the background; return its task once it listens (or raise why it could not)."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # its error, if it raised one
            raise RuntimeError(f"the web server on port {server.config.port} stopped before it listened")
        await asyncio.sleep(0.02)
    return task


async def _stopped(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    """Stop a server started with _started, and wait until it has."""
    server.should_exit = True
    await serving


def _webhook_of(application: Application | None, settings: Settings) -> TelegramWebhook | None:  # type: ignore[type-arg]
    """Telegram's webhook route, in webhook mode."""
    if application is None or not settings.webhook_url or not settings.webhook_secret:
        return None
    return TelegramWebhook(
        application, urlparse(settings.webhook_url).path or "/telegram", settings.webhook_secret
    )


async def _set_webhook(application: Application, settings: Settings) -> None:  # type: ignore[type-arg]
    """Tell Telegram where to post updates, and the secret it must send with each."""
    logger.info("webhook mode: updates are posted to WEBHOOK_URL")
    await application.bot.set_webhook(
        url=settings.webhook_url or "",
        secret_token=settings.webhook_secret,
        allowed_updates=Update.ALL_TYPES,
    )


async def _start_telegram(application: Application, settings: Settings) -> None:  # type: ignore[type-arg]
    await application.initialize()
    await _post_init(application)
    await application.start()
    if not settings.webhook_url:  # webhook mode: our own route puts updates on the queue (serve)
        assert application.updater is not None
        logger.info("long polling mode")
        await application.updater.start_polling(allowed_updates=Update.ALL_TYPES)


async def _stop_telegram(application: Application) -> None:  # type: ignore[type-arg]
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()
    await _post_shutdown(application)


async def _start_web_only(settings: Settings, chats: WebChats, stack: contextlib.AsyncExitStack) -> Relay:
    """The core for the web chat alone (no Telegram): its Rasa client, its database and its jobs."""
    rasa = await stack.enter_async_context(RasaClient(settings.rasa_url, settings.rasa_patience_seconds))
    relay = assemble(
        settings, rasa, chats, sessionmaker_for(settings.database_url, settings.database_timeouts)
    )
    stack.callback(relay.store.close)
    await relay.start()
    jobs = asyncio.create_task(relay.run_jobs())
    stack.callback(jobs.cancel)
    return relay


async def _drop_idle_chats(chats: WebChats) -> None:
    while True:
        await asyncio.sleep(60)
        chats.drop_idle()


# ---------------------------------------------------------------------------------------------------------
# Telegram's webhook, served by our own ASGI app in this event loop (serve()).
#
# As python-telegram-bot's custom-webhook example does with Starlette: each update Telegram posts is
# checked, parsed once into an `Update` and put on the Application's `update_queue`, and Telegram gets its
# 200 at once (the Application works through the queue; on SIGTERM it finishes what it has accepted).
# In place of python-telegram-bot's own tornado server (`Updater.start_webhook`), which logs the wrong
# secret and the caller's address at DEBUG, and the whole update when it can't parse it:
# - a request without the secret Telegram was given (`X-Telegram-Bot-Api-Secret-Token`, compared in
#   constant time) is refused with 403 before its body is read;
# - the body is capped (bot.web.app.Guard), must be JSON and must parse as an update (400 otherwise);
# - nothing here logs an address, a secret or what anyone wrote.
# It is served on WEBHOOK_LISTEN:WEBHOOK_PORT, or inside the web chat's server when WEBHOOK_PORT is
# WEB_PORT (with_webhook). It lives here, with the Telegram channel's composition, because the core and
# the web channel (bot/web/) never import Telegram.

SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (the header's name, not a secret)
# An update is a few KB (a message of 4,096 characters, the message it replies to, their entities);
# nginx's client_max_body_size in deploy/nginx.conf is the same 1 MB.
MAX_UPDATE_BYTES = 1024 * 1024


class TelegramWebhook:
    """The route Telegram posts updates to: checked, parsed, and queued for the Application."""

    def __init__(self, application: Application, path: str, secret: str) -> None:  # type: ignore[type-arg]
        if not secret:
            raise ValueError("the webhook needs its secret (WEBHOOK_SECRET)")
        self.application = application
        self.path = "/" + path.strip("/")
        self._secret = secret.encode()

    def _from_telegram(self, request: Request) -> bool:
        """Return whether the request carries the secret Telegram was given (constant-time compare)."""
        given = request.headers.get(SECRET_HEADER, "").encode("latin-1")
        return hmac.compare_digest(given, self._secret)

    async def receive(self, request: Request) -> Response:
        """One update from Telegram: on the queue, and 200; or the refusal."""
        if not self._from_telegram(request):
            logger.debug("webhook: a request without the right secret was refused")
            return PlainTextResponse("Forbidden.", status_code=403)
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            return PlainTextResponse("Expected JSON.", status_code=415)
        body = await request.body()  # past the cap, Guard answers 413
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # anything python-telegram-bot can't read; never the body itself
            logger.warning(
                "webhook: a request with the right secret was not an update (%s)", type(exc).__name__
            )
            return PlainTextResponse("Not an update.", status_code=400)
        bot = self.application.bot
        if isinstance(bot, ExtBot):  # arbitrary callback data, as python-telegram-bot's own server does
            bot.insert_callback_data(update)
        await self.application.update_queue.put(update)
        return Response(status_code=200)

    def app(self) -> ASGIApp:
        """Return the webhook alone as an ASGI app (its own server, on WEBHOOK_PORT)."""
        return Guard(Starlette(routes=[Route(self.path, self.receive, methods=["POST"])]), MAX_UPDATE_BYTES)


class _ByPath:
    """Pure ASGI: requests for one path go to one app, every other request to the other."""

    def __init__(self, path: str, app: ASGIApp, default: ASGIApp) -> None:
        self.path, self.app, self.default = path, app, default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.app if scope["type"] == "http" and scope.get("path") == self.path else self.default
        await chosen(scope, receive, send)


def with_webhook(web: ASGIApp, webhook: TelegramWebhook, web_paths: frozenset[str]) -> ASGIApp:
    """Return the web chat with Telegram's webhook at its path (one server: WEBHOOK_PORT is WEB_PORT).

    The webhook keeps its own body cap; a path the web chat uses is refused (ValueError).
    """
    first = "/" + webhook.path.strip("/").split("/", 1)[0]
    if webhook.path == "/" or webhook.path in web_paths or first in web_paths:
        raise ValueError(
            f"WEBHOOK_URL's path {webhook.path} is one the web chat uses; choose another, e.g. /telegram"
        )
    return _ByPath(webhook.path, webhook.app(), web)

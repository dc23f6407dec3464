"""The composition root: `build_application(settings)` wires Telegram, the core (bot/relay.py), Rasa and
the database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlparse

import httpx
import uvicorn
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
from bot.web.app import WebChat
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
    beside its Application."""
    chats = WebChats()
    application = build_application(settings, web=chats) if settings.telegram_bot_token else None
    async with contextlib.AsyncExitStack() as stack:
        if application is not None:
            relay: Relay = application.bot_data[RELAY]
            await _start_telegram(application, settings)
            stack.push_async_callback(_stop_telegram, application)
        else:
            relay = await _start_web_only(settings, chats, stack)
        chat = WebChat(relay, chats, settings.exit_url)
        config = uvicorn.Config(
            chat.app(),
            host=settings.web_host,
            port=settings.web_port,
            access_log=False,  # an access log would keep people's addresses
            log_level="warning",
            lifespan="off",
            server_header=False,
            ws="none",  # no WebSockets: the live feed is server-sent events
            timeout_graceful_shutdown=5,  # open live feeds would otherwise hold a shutdown up for ever
        )
        server = uvicorn.Server(config)
        housekeeping = asyncio.create_task(_drop_idle_chats(chats))
        stack.callback(housekeeping.cancel)
        print(f"Signpost web chat: http://{settings.web_host}:{settings.web_port}/", flush=True)
        if ready is not None:
            ready()
        await server.serve()
        await chat.done()


async def _start_telegram(application: Application, settings: Settings) -> None:  # type: ignore[type-arg]
    await application.initialize()
    await _post_init(application)
    await application.start()
    assert application.updater is not None
    if settings.webhook_url:
        path = urlparse(settings.webhook_url).path.strip("/") or "telegram"
        logger.info("webhook mode on %s:%d/%s", settings.webhook_listen, settings.webhook_port, path)
        await application.updater.start_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=path,
            webhook_url=settings.webhook_url,
            secret_token=settings.webhook_secret,
            allowed_updates=Update.ALL_TYPES,
        )
    else:
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

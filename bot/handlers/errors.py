"""The global error handler: log first (never what anyone wrote), then make sure nobody is left unanswered."""

from __future__ import annotations

import logging
import traceback

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import cards
from bot.handlers import person_of, relay_of
from bot.responses import response_text

logger = logging.getLogger(__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error's kind and where it happened, then answer the person (crisis numbers) or moderator."""
    error = context.error
    where = "".join(traceback.format_tb(error.__traceback__)) if error else ""
    # The exception's message can quote data (SQL parameters, a user's text), so only its type is logged.
    logger.error("error while handling an update: %s\n%s", type(error).__name__, where)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    chat, user = update.effective_chat, update.effective_user
    if chat.type != ChatType.PRIVATE:
        return
    relay = relay_of(context)
    moderator = user is not None and relay.roster.is_moderator(user.id)
    text = cards.MODERATOR_ERROR if moderator else response_text("utter_adapter_error")
    try:
        sent = await context.bot.send_message(chat.id, text)
    except Exception as exc:  # nothing more can be done; it is logged
        logger.error("could not send the error answer: %s", type(exc).__name__)
    else:
        if user is not None and not moderator:  # it shows they were here: quick exit takes it away
            await relay.note_sent(person_of(relay, chat.id, user.id), [sent.message_id])
    if update.callback_query is not None:
        try:
            await update.callback_query.answer()
        except Exception as exc:  # the answer above is what matters
            logger.debug("could not answer the button press: %s", type(exc).__name__)

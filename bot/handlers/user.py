"""Handlers for young people and workers writing to the bot in a private chat."""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import cards
from bot.handlers import person_of, relay_of
from bot.people import Person

logger = logging.getLogger(__name__)

MEDIA_KINDS = ("photo", "video", "voice", "video_note", "animation", "document", "sticker", "audio")
PERSONAL_KINDS = ("location", "venue", "contact")


def _person(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Person | None:
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        return None
    return person_of(relay_of(context), chat.id, user.id)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The person's words go to Rasa, or to the moderator holding their case."""
    person, message = _person(update, context), update.message
    if person and message and message.text is not None:
        await relay_of(context).user_text(person, message.text, message.message_id)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button under one of our messages: its data is checked by the relay, never trusted."""
    query, person = update.callback_query, _person(update, context)
    if query is None or person is None:
        return
    if update.effective_chat is None or update.effective_chat.type != ChatType.PRIVATE:
        await query.answer(cards.EXPIRED)  # not a card button, and not from a person's chat: forged
        return
    await query.answer()
    title = None
    if query.message is not None and isinstance(query.message, Message) and query.message.reply_markup:
        title = next(
            (
                b.text
                for row in query.message.reply_markup.inline_keyboard
                for b in row
                if b.callback_data == query.data
            ),
            None,
        )
    pressed = query.message.message_id if query.message is not None else None
    await relay_of(context).user_button(person, str(query.data or ""), title, pressed)


def media_kind(message: Message) -> str:
    """Return which kind of media a message carries (animation before document: a GIF is both)."""
    return next((kind for kind in MEDIA_KINDS if getattr(message, kind, None)), "document")


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Media is never downloaded, stored or passed on: it is deleted and the person told why."""
    person, message = _person(update, context), update.message
    if person and message:
        await relay_of(context).user_media(person, media_kind(message), message.message_id, message.caption)


async def on_personal(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A location or contact is removed from the chat; nothing of it is kept."""
    person, message = _person(update, context), update.message
    if person and message:
        kind = next((k for k in PERSONAL_KINDS if getattr(message, k, None)), "location")
        await relay_of(context).user_personal(person, kind, message.message_id)


async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An edited message: the moderator sees the new text; otherwise the person is asked to resend."""
    person, message = _person(update, context), update.edited_message
    if person and message:
        await relay_of(context).user_edited(person, message.text or message.caption or "")


async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything else a person sends (a poll, dice, a game …) gets a kind "please type" answer."""
    person, message = _person(update, context), update.message
    if person and message:
        kind = next(
            (
                k
                for k in ("poll", "dice", "game", "story", "invoice", "checklist")
                if getattr(message, k, None)
            ),
            "message",
        )
        await relay_of(context).user_unsupported(person, kind, message.message_id)

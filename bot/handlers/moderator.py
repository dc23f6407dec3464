"""Handlers for moderators: card buttons, their private chat with the bot, and their commands."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import cards
from bot.handlers import relay_of
from bot.people import Moderator, Quoted

logger = logging.getLogger(__name__)


def _moderator(update: Update) -> Moderator | None:
    user = update.effective_user
    return Moderator(user.id, user.first_name or "a moderator") if user else None


def _replied_to(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Quoted | None:
    """The message replied to; the case it names is read only from a line the bot itself sent."""
    message = update.effective_message
    reply = message.reply_to_message if message else None
    if reply is None:
        return None
    ours = reply.from_user is not None and reply.from_user.id == context.bot.id
    return Quoted(reply.message_id, cards.case_of_line(reply.text or "") if ours else None)


async def _answer(update: Update, text: str | None) -> None:
    if text and update.effective_message is not None:
        await update.effective_message.reply_text(text)


async def on_card_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Claim, Take over or Close on a case card; anyone not on MODERATOR_USER_IDS is refused (and logged)."""
    query, moderator = update.callback_query, _moderator(update)
    if query is None or moderator is None:
        return
    answer = await relay_of(context).desk.button(moderator, str(query.data or ""))
    await query.answer(answer, show_alert=True)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What a moderator writes in their private chat reaches the young person of that case."""
    message, moderator = update.message, _moderator(update)
    if message is None or moderator is None or message.text is None:
        return
    if message.text.startswith("/"):  # a mistyped command must never reach a young person
        await _answer(update, cards.COMMANDS_HELP)
        return
    await _answer(
        update, await relay_of(context).desk.text(moderator, message.text, _replied_to(update, context))
    )


async def on_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Moderators' media is not passed on either: only text reaches a young person."""
    await _answer(update, cards.TEXT_ONLY)


async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An edit can't change what the young person already has."""
    message = update.edited_message
    if message is not None:
        await message.reply_text(cards.EDITS_NOT_PASSED_ON)


async def on_note(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/note <text>`: a private note on the case."""
    moderator = _moderator(update)
    if moderator is not None:
        text = " ".join(context.args or [])
        await _answer(
            update, await relay_of(context).desk.note(moderator, text, _replied_to(update, context))
        )


def _number(args: list[str] | None) -> int | None:
    raw = (args or [""])[0].lstrip("#")
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


async def on_close(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/close [number]`: end the case replied to, named, or the only one held."""
    moderator = _moderator(update)
    if moderator is not None:
        number = _number(context.args)
        await _answer(
            update, await relay_of(context).desk.close_named(moderator, number, _replied_to(update, context))
        )


async def on_claim(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/claim <number>`: the same as the card's Claim button."""
    moderator = _moderator(update)
    if moderator is None:
        return
    number = _number(context.args)
    if number is None:
        await _answer(update, cards.SAY_WHICH_CASE.format(command="claim"))
        return
    await _answer(update, await relay_of(context).desk.claim(moderator, number))


async def on_release(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/release [number]`: give the case replied to, named, or the only one held back to the queue."""
    moderator = _moderator(update)
    if moderator is not None:
        number = _number(context.args)
        await _answer(
            update, await relay_of(context).desk.release(moderator, number, _replied_to(update, context))
        )


async def on_takeover(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/takeover <number>`: take a case another moderator holds (the same as the card's Take over)."""
    moderator = _moderator(update)
    if moderator is None:
        return
    number = _number(context.args)
    if number is None:
        await _answer(update, cards.SAY_WHICH_CASE.format(command="takeover"))
        return
    await _answer(update, await relay_of(context).desk.takeover(moderator, number))


async def on_queue(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/queue`: open cases, most urgent then longest waiting first.

    Asked in the moderators' group, the answer goes through the card board (within the group's limit),
    and a refusal goes to the asker's private chat: nobody's /queue can use up the group's budget.
    """
    user, chat = update.effective_user, update.effective_chat
    if user is None:
        return
    relay = relay_of(context)
    if chat is not None and chat.type != ChatType.PRIVATE:
        await relay.desk.queue_in_group(user.id)
        return
    await _answer(update, await relay.desk.queue(user.id))


async def on_block(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/block [number]`: the case replied to, named, or the only one held; its person is blocked."""
    moderator = _moderator(update)
    if moderator is not None:
        number = _number(context.args)
        await _answer(
            update, await relay_of(context).desk.block(moderator, number, _replied_to(update, context))
        )


async def on_unblock(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/unblock <block number>`: lift a block early."""
    moderator = _moderator(update)
    if moderator is not None:
        await _answer(update, await relay_of(context).desk.unblock(moderator, _number(context.args)))


async def on_blocks(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/blocks`: the blocks in force."""
    moderator = _moderator(update)
    if moderator is not None:
        await _answer(update, await relay_of(context).desk.blocks(moderator))

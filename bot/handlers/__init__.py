"""Telegram update handlers: thin functions that turn an Update into a call on the relay."""

from __future__ import annotations

from telegram.ext import ContextTypes

from bot.people import Person
from bot.pseudonym import pseudonym
from bot.relay import Relay

RELAY = "relay"


def relay_of(context: ContextTypes.DEFAULT_TYPE) -> Relay:
    """Return the process's relay (put in bot_data by build_application)."""
    relay = context.bot_data[RELAY]
    assert isinstance(relay, Relay)
    return relay


def person_of(relay: Relay, chat_id: int, user_id: int) -> Person:
    """Return the person behind a private chat: the chat to answer, and the pseudonym of their id."""
    return Person(chat_id, pseudonym(relay.settings.pseudonym_key, user_id))

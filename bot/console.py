"""Local mode: a terminal chat through the same relay and handover code as Telegram (`make run`, no token).

You are the young person; lines starting with `/mod` let you act as the moderator, so the whole flow —
a case card, claiming, relaying, closing — can be seen on one screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
import uuid
from dataclasses import dataclass, field
from typing import TextIO

from actions.db import sessionmaker_for, upgrade
from bot.channel import Say
from bot.people import Moderator, Person
from bot.pseudonym import pseudonym
from bot.rasa_client import RasaClient
from bot.relay import Relay, assemble
from bot.responses import response_text
from bot.settings import Settings

logger = logging.getLogger(__name__)

PERSON_CHAT = 1
MODERATOR_ID = 2
MODERATORS_GROUP = -1
QUIT_COMMANDS = {"/quit", "/q"}
GOODBYE = "utter_terminal_goodbye"
INTRO = """Signpost terminal chat. Type a message and press Enter; type a button's number to press it.
You are the young person. To act as the moderator, start a line with /mod:
  /mod queue        open cases          /mod claim 1   take case 1
  /mod <text>       write to the person /mod note <text>   a private note
  /mod close        end the case you hold
  /mod block        block the person of the case you hold
/photo pretends to send a photo. /exit is quick exit, /forget deletes what Signpost keeps about you.
/quit (or Ctrl-D) leaves.
"""


@dataclass
class ConsoleOutbox:
    """The terminal channel: prints what the bot would send to each chat; numbers the person's buttons.

    It plays Telegram's part for deleting (it says what would be deleted, as quick exit would) and shows
    no typing indicator.
    """

    out: TextIO
    buttons: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1
    can_delete: bool = field(default=True, init=False)
    shows_typing: bool = field(default=False, init=False)
    max_text_chars: int = field(default=1_000_000, init=False)

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def send(self, chat_id: int, message: Say) -> list[int]:
        """Show a message in the right voice: to the person, the moderators' group or the moderator."""
        self.next_id += 1
        if chat_id == PERSON_CHAT:
            self._print(f"Signpost: {message.text}")
            for title, data in message.buttons:  # numbered across everything said since the person typed
                self.buttons.append((title, data))
                self._print(f"   [{len(self.buttons)}] {title}")
        else:
            where = "moderators' group" if chat_id == MODERATORS_GROUP else "moderator's private chat"
            self._print(_indent(f"[{where}] {message.text}"))
            if message.buttons:
                self._print(_indent("   buttons: " + ", ".join(t for t, _ in message.buttons)))
        return [self.next_id]

    async def edit(self, chat_id: int, message_id: int, message: Say) -> None:
        """Show a card's new state."""
        self._print(_indent(f"[moderators' group, card updated] {message.text}"))

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """The terminal has nothing to delete; it says what Telegram would do."""
        self._print("   (the photo is deleted from the chat, unopened)")
        return True

    async def delete_many(self, chat_id: int, message_ids: list[int]) -> None:
        """The terminal can't take back what it printed; it says what Telegram would do."""
        self._print(f"   (quick exit: {len(message_ids)} messages are deleted from the chat)")

    async def typing(self, chat_id: int) -> None:
        """The terminal shows no typing indicator."""


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


@dataclass
class ConsoleChat:
    """One person's conversation in the terminal, with a moderator at the same keyboard."""

    relay: Relay
    outbox: ConsoleOutbox
    person: Person
    moderator: Moderator = field(default_factory=lambda: Moderator(MODERATOR_ID, "You (moderator)"))
    next_message_id: int = 1_000

    async def handle_line(self, line: str) -> None:
        """Do what the typed line asks: a button, a moderator command, a pretend photo, or a message."""
        stripped = line.strip()
        if not stripped:
            return
        shown, self.outbox.buttons = self.outbox.buttons, []
        if stripped.split()[0] != "/mod":
            self.relay.arrived(self.person, expects_answer=True)
        if stripped.isdigit() and 1 <= int(stripped) <= len(shown):
            title, data = shown[int(stripped) - 1]
            await self.relay.user_button(self.person, data, title)
        elif stripped.split()[0] == "/mod":
            await self.moderate(stripped.removeprefix("/mod").strip())
        elif stripped == "/photo":
            self.next_message_id += 1
            await self.relay.user_media(self.person, "photo", self.next_message_id, None)
        else:
            self.next_message_id += 1
            await self.relay.user_text(self.person, stripped, self.next_message_id)

    async def moderate(self, command: str) -> None:
        """Act as the moderator: the same relay calls as Telegram's buttons and private chat."""
        word, _, rest = command.partition(" ")
        number = int(rest.strip().lstrip("#")) if rest.strip().lstrip("#").isdigit() else None
        desk = self.relay.desk
        if word == "queue":
            answer: str | None = await desk.queue(self.moderator.user_id)
        elif word == "claim" and number is not None:
            answer = await desk.claim(self.moderator, number)
        elif word == "close":
            answer = await desk.close_named(self.moderator, number, None)
        elif word == "release":
            answer = await desk.release(self.moderator, number, None)
        elif word == "note":
            answer = await desk.note(self.moderator, rest, None)
        elif word == "block":
            answer = await desk.block(self.moderator, number, None)
        elif command:
            answer = await desk.text(self.moderator, command, None)
        else:
            answer = (
                "Type /mod queue, /mod claim <number>, /mod <text>, /mod note <text>, /mod release "
                "or /mod close."
            )
        if answer:
            self.outbox._print(_indent(f"[to you, moderator] {answer}"))


def local_settings(settings: Settings) -> Settings:
    """Return settings for local mode: you are the only moderator, and the group is the terminal."""
    return dataclasses.replace(
        settings, moderator_chat_id=MODERATORS_GROUP, moderator_user_ids=frozenset({MODERATOR_ID})
    )


async def run_console(settings: Settings, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """Run the terminal chat until the person quits or input ends."""
    settings = local_settings(settings)
    upgrade(settings.database_url)  # local mode is one process: it may bring its database up to date
    outbox = ConsoleOutbox(out)
    out.write(INTRO)
    async with RasaClient(settings.rasa_url, settings.rasa_patience_seconds) as client:
        sessions = sessionmaker_for(settings.database_url, settings.database_timeouts)
        relay = assemble(settings, client, outbox, sessions)
        await relay.start()
        person = Person(PERSON_CHAT, pseudonym(settings.pseudonym_key, f"console-{uuid.uuid4().hex}"))
        chat = ConsoleChat(relay, outbox, person)
        jobs = asyncio.create_task(relay.run_jobs())
        loop = asyncio.get_running_loop()
        try:
            while True:
                out.write("You: ")
                out.flush()
                line = await loop.run_in_executor(None, stdin.readline)
                if not line or line.strip().lower() in QUIT_COMMANDS:
                    out.write(f"\n{response_text(GOODBYE)}\n")
                    return 0
                await chat.handle_line(line)
        finally:
            jobs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await jobs

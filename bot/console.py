"""A terminal chat with the assistant, for running Signpost without a Telegram token (`make run`)."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

from bot.pseudonym import pseudonym
from bot.rasa_client import BotMessage, Button, RasaClient, RasaUnavailableError
from bot.responses import CRISIS_RESPONSE, response_text
from bot.settings import Settings

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4096  # Telegram's limit for one message; the console keeps the same rule.
QUIT_COMMANDS = {"/quit", "/q"}
INTRO = (
    "Signpost terminal chat. Type a message and press Enter. Type a button's number to press it.\n"
    "Type /quit (or Ctrl-D) to leave.\n"
)
UNREACHABLE = (
    "I can't reach the assistant right now. Your message is kept and I'll send it again with your next one."
)
TOO_LONG = "That message is very long. I've kept the first {limit} characters."


@dataclass
class ConsoleChat:
    """One person's conversation in the terminal."""

    client: RasaClient
    sender: str
    out: TextIO
    buttons: tuple[Button, ...] = ()
    pending: deque[str] = field(default_factory=deque)

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def render(self, messages: list[BotMessage]) -> None:
        """The person sees each bot message, with buttons numbered across the whole reply."""
        buttons: list[Button] = []
        for message in messages:
            if message.text:
                self._print(f"Signpost: {message.text}")
            if message.image:
                self._print("Signpost: [a picture; the terminal chat does not show pictures]")
            for button in message.buttons:
                buttons.append(button)
                self._print(f"   [{len(buttons)}] {button.title}")
            if message.handover:
                self._print(
                    "   (handover requested: priority {priority}, reason {reason}; in Telegram the "
                    "moderators would now get a case card)".format(**message.handover)
                )
        self.buttons = tuple(buttons)

    def to_message(self, line: str) -> str:
        """Return what to send for a typed line: a button's payload if they typed its number."""
        stripped = line.strip()
        if stripped.isdigit() and 1 <= int(stripped) <= len(self.buttons):
            return self.buttons[int(stripped) - 1].payload
        if len(stripped) > MAX_MESSAGE_CHARS:
            self._print(TOO_LONG.format(limit=MAX_MESSAGE_CHARS))
            return stripped[:MAX_MESSAGE_CHARS]
        return stripped

    async def handle_line(self, line: str) -> None:
        """Send what the person typed (after anything still waiting) and show the replies."""
        message = self.to_message(line)
        if not message:
            return
        self.pending.append(message)
        while self.pending:
            try:
                replies = await self.client.send(self.sender, self.pending[0])
            except RasaUnavailableError:
                self._print(f"Signpost: {UNREACHABLE}")
                self._print(f"Signpost: {response_text(CRISIS_RESPONSE)}")
                return
            self.pending.popleft()
            self.render(replies)


async def run_console(settings: Settings, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """Run the terminal chat until the person quits or input ends."""
    sender = pseudonym(settings.pseudonym_key, f"console-{uuid.uuid4().hex}")
    out.write(INTRO)
    async with RasaClient(settings.rasa_url, settings.rasa_timeout_seconds) as client:
        chat = ConsoleChat(client, sender, out)
        loop = asyncio.get_running_loop()
        while True:
            out.write("You: ")
            out.flush()
            line = await loop.run_in_executor(None, stdin.readline)
            if not line or line.strip().lower() in QUIT_COMMANDS:
                out.write("\nBye. Childline is there any time on 0800 1111.\n")
                return 0
            await chat.handle_line(line)

"""`python -m bot`: the terminal chat without TELEGRAM_BOT_TOKEN (the Telegram adapter is issue 5)."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.console import run_console
from bot.settings import SettingsError, get_settings


def main() -> int:
    """Start the adapter chosen by the settings."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"Signpost cannot start: {exc}", file=sys.stderr)
        return 2
    if settings.telegram_bot_token:
        print(
            "TELEGRAM_BOT_TOKEN is set, but the Telegram adapter is not part of this version yet. "
            "Unset TELEGRAM_BOT_TOKEN to chat in the terminal.",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(run_console(settings))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bot`: Telegram with TELEGRAM_BOT_TOKEN set, otherwise the terminal chat (same relay)."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.settings import SettingsError, get_settings


def main() -> int:
    """Start the adapter chosen by the settings."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Request URLs carry the bot token and are logged by httpx at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per job run otherwise
    # Alembic logs its plugins on import and each migration at INFO: noise in the terminal chat.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"Signpost cannot start: {exc}", file=sys.stderr)
        return 2
    if settings.telegram_bot_token:
        from bot.app import run

        run(settings)
        return 0
    from bot.console import run_console

    logging.getLogger().setLevel(logging.WARNING)  # the terminal is the chat; keep it readable
    try:
        return asyncio.run(run_console(settings))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

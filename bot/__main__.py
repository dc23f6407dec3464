"""`python -m bot`: the web chat, and Telegram too with TELEGRAM_BOT_TOKEN set; `python -m bot chat`: the
terminal chat (the same core)."""

from __future__ import annotations

import asyncio
import logging
import sys

from sqlalchemy.exc import SQLAlchemyError

from actions.db import SchemaNotReadyError, check_schema
from actions.settings import url_for_display
from bot.settings import Settings, SettingsError, get_settings


def schema_problem(settings: Settings) -> str | None:
    """Return why the adapter can't use its database (not migrated, or unreachable), or None if it can."""
    try:
        check_schema(settings.database_url, settings.database_timeouts)
    except SchemaNotReadyError as exc:
        return str(exc)
    except SQLAlchemyError as exc:
        return f"cannot reach the database at {url_for_display(settings.database_url)} ({type(exc).__name__})"
    return None


def main(argv: list[str] | None = None) -> int:
    """Start the adapter: the web chat (and Telegram), or with `chat` the terminal chat."""
    args = sys.argv[1:] if argv is None else argv
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
    if args[:1] != ["chat"]:
        # Migrations are `make ready`'s work, done before start (never on a request): say what to run.
        problem = schema_problem(settings)
        if problem is not None:
            print(f"Signpost cannot start: {problem}", file=sys.stderr)
            return 2
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

"""The adapter's settings, read once from the environment (see README "Configuration")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_RASA_URL = "http://localhost:5005"
DEFAULT_TELEGRAM_BASE_URL = "https://api.telegram.org/bot"
MIN_KEY_LENGTH = 32


class SettingsError(ValueError):
    """A missing or bad setting, with a message saying how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Typed, frozen configuration for the adapter."""

    rasa_url: str
    pseudonym_key: bytes
    telegram_bot_token: str | None
    telegram_base_url: str
    moderator_chat_id: int | None
    moderator_user_ids: frozenset[int]
    rasa_timeout_seconds: float = 4.0


def _int_or_none(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a Telegram chat id (an integer), got {raw!r}") from None


def _ids(env: Mapping[str, str], name: str) -> frozenset[int]:
    raw = env.get(name, "").strip()
    try:
        return frozenset(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name} must be comma-separated Telegram user ids, got {raw!r}") from None


def load_settings(env: Mapping[str, str]) -> Settings:
    """Return settings from an environment mapping, or raise SettingsError saying what is wrong."""
    key = env.get("PSEUDONYM_KEY", "")
    if len(key) < MIN_KEY_LENGTH or key == "change-me":
        raise SettingsError(
            f"PSEUDONYM_KEY must be a secret of at least {MIN_KEY_LENGTH} characters. "
            "`make` writes one to .env; or set it yourself, e.g. PSEUDONYM_KEY=$(openssl rand -hex 32)"
        )
    rasa_url = (env.get("RASA_URL") or DEFAULT_RASA_URL).rstrip("/")
    if not rasa_url.startswith(("http://", "https://")):
        raise SettingsError(f"RASA_URL must start with http:// or https://, got {rasa_url!r}")
    return Settings(
        rasa_url=rasa_url,
        pseudonym_key=key.encode("utf-8"),
        telegram_bot_token=env.get("TELEGRAM_BOT_TOKEN", "").strip() or None,
        telegram_base_url=env.get("TELEGRAM_BASE_URL", "").strip() or DEFAULT_TELEGRAM_BASE_URL,
        moderator_chat_id=_int_or_none(env, "MODERATOR_CHAT_ID"),
        moderator_user_ids=_ids(env, "MODERATOR_USER_IDS"),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's settings, read from the environment once."""
    return load_settings(os.environ)

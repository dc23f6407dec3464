"""The adapter's settings, read once from the environment (see README "Configuration")."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from actions.settings import (
    DEFAULT_TIMEOUTS,
    ROOT,
    SECRET,
    URL,
    Timeouts,
    environment,
    redacted_repr,
    sqlalchemy_url,
    url_for_display,
)
from actions.settings import SettingsError as DatabaseSettingsError
from actions.settings import load_settings as load_database_settings
from bot.crypto import check_key
from bot.escalation import Hours
from bot.tracker_store import TrackerStoreError, check_same_store

DEFAULT_RASA_URL = "http://localhost:5005"
DEFAULT_TELEGRAM_BASE_URL = "https://api.telegram.org/bot"
# "Exit this page" goes somewhere ordinary, as GOV.UK's pattern advises (its own default is BBC Weather).
DEFAULT_EXIT_URL = "https://www.bbc.co.uk/weather"
MIN_KEY_LENGTH = 32
DEFAULT_TRACKER_STORE_URL = f"sqlite:///{ROOT / 'var' / 'trackers.db'}"


class SettingsError(ValueError):
    """A missing or bad setting, with a message saying how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Typed, frozen configuration for the adapter."""

    rasa_url: str
    pseudonym_key: bytes = field(metadata=SECRET)
    telegram_bot_token: str | None = field(metadata=SECRET)
    telegram_base_url: str
    moderator_chat_id: int | None
    moderator_user_ids: frozenset[int]
    database_url: str = field(default="", metadata=URL)
    # Connect, statement and lock timeouts of every database call (the case database and the tracker store).
    database_timeouts: Timeouts = DEFAULT_TIMEOUTS
    # The person gets an answer after this long even if Rasa is still thinking ...
    rasa_timeout_seconds: float = 4.0
    # ... and Rasa's own answer is still delivered if it comes within this long.
    rasa_patience_seconds: float = 30.0
    # At start-up the adapter waits this long at most for Rasa's first prediction (None: no warm-up).
    rasa_warm_up_seconds: float | None = None
    handover_wait: dt.timedelta = dt.timedelta(minutes=5)
    handover_remind_every: dt.timedelta = dt.timedelta(minutes=10)
    # The group is reminded about a claimed case whose young person has waited this long for an answer.
    claim_idle: dt.timedelta = dt.timedelta(minutes=5)
    moderator_hours: Hours = field(default_factory=Hours)
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str | None = field(default=None, metadata=SECRET)
    telegram_rate_limit: bool = True
    # Encrypts case transcripts and chat ids at rest; the first key encrypts, all of them decrypt.
    transcript_keys: tuple[str, ...] = field(default=(), metadata=SECRET)
    # Rasa's SQL tracker store, which /forget and the retention purge clear (endpoints.yml uses the same).
    tracker_store_url: str = field(default="", metadata=URL)
    # The endpoints file Rasa runs with: its tracker_store must be the store at tracker_store_url.
    rasa_endpoints: Path = ROOT / "endpoints.yml"
    # Closed cases, their transcripts and inactive Rasa conversations are deleted after this long ...
    retention: dt.timedelta = dt.timedelta(days=30)
    # ... and the moderators' audit trail after this long.
    audit_retention: dt.timedelta = dt.timedelta(days=365)
    # GET /healthz answers here (through the event loop, after asking the database); None: not served.
    health_listen: str = "127.0.0.1"
    health_port: int | None = None
    # The web chat (bot/web/) listens here; "Exit this page" goes to exit_url.
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    exit_url: str = DEFAULT_EXIT_URL
    # Proxies whose X-Forwarded-For (and -Proto) the web chat believes: the address the per-address limit
    # counts. uvicorn's own setting and default; behind nginx on another host or container, its address.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # With several adapters, the web chat's per-address limit is kept here, shared (bot/web/addresses.py).
    redis_url: str | None = field(default=None, metadata=URL)

    def __repr__(self) -> str:
        return redacted_repr(self)


def _exit_url(env: Mapping[str, str]) -> str:
    url = env.get("EXIT_URL", "").strip() or DEFAULT_EXIT_URL
    if not url.startswith(("https://", "http://")):
        raise SettingsError(f"EXIT_URL must be a web address starting with https://, got {url!r}")
    return url


def _redis_url(env: Mapping[str, str]) -> str | None:
    url = env.get("REDIS_URL", "").strip()
    if not url:
        return None
    parsed = urlparse(url)
    if (
        parsed.scheme not in {"redis", "rediss"}
        or not parsed.hostname
        or not re.fullmatch(r"/?\d*", parsed.path)
    ):
        raise SettingsError(
            "REDIS_URL must be redis://host:port/db (rediss:// for TLS), e.g. redis://127.0.0.1:6379/1; "
            "empty: each adapter keeps the web chat's per-address limit in its own memory"
        )
    return url


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


def _port_or_none(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name} must be a TCP port number (or empty: not served), got {raw!r}")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise SettingsError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def _days(env: Mapping[str, str], name: str, default: int) -> dt.timedelta:
    raw = env.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} must be a whole number of days, 1 or more, got {raw!r}")
    return dt.timedelta(days=int(raw))


def _transcript_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in env.get("TRANSCRIPT_KEYS", "").split(",") if k.strip())
    if not keys:
        raise SettingsError(
            "TRANSCRIPT_KEYS must be set: the key that encrypts case transcripts. `make` writes one to .env; "
            "or make one with `python -m bot.privacy new-key`"
        )
    for position, key in enumerate(keys, start=1):
        try:
            check_key(key)
        except (ValueError, UnicodeEncodeError):
            raise SettingsError(
                f"TRANSCRIPT_KEYS: key {position} is not a valid key (32 bytes, URL-safe base64); "
                "make one with `python -m bot.privacy new-key`"
            ) from None
    return keys


def _webhook(env: Mapping[str, str], web_host: str, web_port: int) -> dict[str, object]:
    url = env.get("WEBHOOK_URL", "").strip() or None
    secret = env.get("WEBHOOK_SECRET", "").strip() or None
    if url is None:
        return {}
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        raise SettingsError(f"WEBHOOK_URL must be an https:// URL Telegram can reach, got {url!r}")
    if secret is None or not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", secret):
        raise SettingsError(
            "WEBHOOK_SECRET must be set in webhook mode: 16–256 letters, digits, _ or -, "
            "e.g. WEBHOOK_SECRET=$(openssl rand -hex 32)"
        )
    port = env.get("WEBHOOK_PORT", "").strip() or "8443"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"WEBHOOK_PORT must be a TCP port number, got {port!r}")
    listen = env.get("WEBHOOK_LISTEN", "").strip() or "127.0.0.1"
    if int(port) == web_port and listen != web_host:
        # One port: the web chat's server answers the webhook too (bot.app.TelegramWebhook), on one address.
        raise SettingsError(
            f"WEBHOOK_PORT is WEB_PORT ({port}), so the web chat's server answers the webhook too: "
            f"WEBHOOK_LISTEN ({listen}) must then be WEB_HOST ({web_host}); or give the webhook a port of "
            "its own"
        )
    return {"webhook_url": url, "webhook_secret": secret, "webhook_port": int(port), "webhook_listen": listen}


def _rasa_endpoints(env: Mapping[str, str], tracker_store_url: str) -> Path:
    """Return Rasa's endpoints file, after checking its tracker store is the one /forget clears."""
    path = ROOT / (env.get("RASA_ENDPOINTS", "").strip() or "endpoints.yml")
    rasa_env = {**env, "TRACKER_STORE_URL": tracker_store_url}  # what make gives Rasa too
    try:
        check_same_store(tracker_store_url, path, rasa_env, Path.cwd())
    except FileNotFoundError:
        raise SettingsError(
            f"RASA_ENDPOINTS: no such file {str(path)!r}. Name the endpoints file Rasa runs with "
            "(endpoints.yml, or endpoints.prod.yml in production), so the adapter can check its tracker store"
        ) from None
    except TrackerStoreError as exc:
        raise SettingsError(
            f"TRACKER_STORE_URL is {url_for_display(tracker_store_url)}, but {exc}: /forget and the "
            "retention purge would delete nothing Rasa keeps. Point both at the same database (README, "
            '"Configuration"; RASA_ENDPOINTS names the file Rasa runs with)'
        ) from None
    return path


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
    token = env.get("TELEGRAM_BOT_TOKEN", "").strip() or None
    moderator_chat_id = _int_or_none(env, "MODERATOR_CHAT_ID")
    moderator_user_ids = _ids(env, "MODERATOR_USER_IDS")
    if token and (moderator_chat_id is None or not moderator_user_ids):
        raise SettingsError(
            "With TELEGRAM_BOT_TOKEN set, MODERATOR_CHAT_ID (the moderators' group) and MODERATOR_USER_IDS "
            "(who may take cases) must be set too, or nobody could answer a request for a person. "
            'See README, "Moderators\' set-up".'
        )
    try:
        database = load_database_settings(env)
        database_url = database.database_url
        tracker_store_url = sqlalchemy_url(env, "TRACKER_STORE_URL", DEFAULT_TRACKER_STORE_URL)
    except DatabaseSettingsError as exc:
        raise SettingsError(str(exc)) from None
    try:
        hours = Hours.parse(env.get("MODERATOR_HOURS", ""))
    except ValueError as exc:
        raise SettingsError(f"MODERATOR_HOURS: {exc} (UK time, e.g. 09:00-22:00; empty = any time)") from None
    web_host = env.get("WEB_HOST", "").strip() or "127.0.0.1"
    web_port = _port_or_none(env, "WEB_PORT") or 8000
    return Settings(
        rasa_url=rasa_url,
        pseudonym_key=key.encode("utf-8"),
        telegram_bot_token=token,
        telegram_base_url=env.get("TELEGRAM_BASE_URL", "").strip() or DEFAULT_TELEGRAM_BASE_URL,
        moderator_chat_id=moderator_chat_id,
        moderator_user_ids=moderator_user_ids,
        database_url=database_url,
        database_timeouts=database.database_timeouts,
        rasa_timeout_seconds=_seconds(env, "RASA_TIMEOUT_SECONDS", 4.0),
        rasa_warm_up_seconds=_seconds(env, "RASA_WARM_UP_SECONDS", 180.0),
        handover_wait=dt.timedelta(seconds=_seconds(env, "HANDOVER_WAIT_SECONDS", 300)),
        handover_remind_every=dt.timedelta(seconds=_seconds(env, "HANDOVER_REMIND_SECONDS", 600)),
        claim_idle=dt.timedelta(seconds=_seconds(env, "CLAIM_IDLE_SECONDS", 300)),
        moderator_hours=hours,
        telegram_rate_limit=env.get("TELEGRAM_RATE_LIMIT", "on").strip().lower() not in {"off", "0", "false"},
        transcript_keys=_transcript_keys(env),
        tracker_store_url=tracker_store_url,
        rasa_endpoints=_rasa_endpoints(env, tracker_store_url),
        retention=_days(env, "RETENTION_DAYS", 30),
        audit_retention=_days(env, "AUDIT_RETENTION_DAYS", 365),
        health_listen=env.get("HEALTH_LISTEN", "").strip() or "127.0.0.1",
        health_port=_port_or_none(env, "HEALTH_PORT"),
        web_host=web_host,
        web_port=web_port,
        exit_url=_exit_url(env),
        forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", "").strip() or "127.0.0.1,::1",
        redis_url=_redis_url(env),
        **_webhook(env, web_host, web_port),  # type: ignore[arg-type]
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's settings, read from the environment (and .env beneath it) once."""
    return load_settings(environment())

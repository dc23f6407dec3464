import pytest

from bot.settings import SettingsError, load_settings

KEY = "k" * 40
TRANSCRIPT_KEY = "wJmQlB0KkBd1mV7mS4mF9lY0b8GqRt5nqvG3mZb2yUQ="
BASE = {"PSEUDONYM_KEY": KEY, "TRANSCRIPT_KEYS": TRANSCRIPT_KEY}


def test_defaults_fill_in_what_is_optional() -> None:
    settings = load_settings(BASE)
    assert settings.rasa_url == "http://localhost:5005"
    assert settings.telegram_bot_token is None
    assert settings.moderator_user_ids == frozenset()


def test_moderator_ids_are_parsed() -> None:
    settings = load_settings({**BASE, "MODERATOR_USER_IDS": "12, 34,", "MODERATOR_CHAT_ID": "-100200"})
    assert settings.moderator_user_ids == frozenset({12, 34})
    assert settings.moderator_chat_id == -100200


@pytest.mark.parametrize("key", ["", "short", "change-me"])
def test_a_missing_or_weak_pseudonym_key_stops_start_up_with_a_clear_message(key: str) -> None:
    with pytest.raises(SettingsError, match="PSEUDONYM_KEY"):
        load_settings({"PSEUDONYM_KEY": key})


def test_bad_ids_are_reported_by_name() -> None:
    with pytest.raises(SettingsError, match="MODERATOR_USER_IDS"):
        load_settings({**BASE, "MODERATOR_USER_IDS": "12,bob"})
    with pytest.raises(SettingsError, match="RASA_URL"):
        load_settings({**BASE, "RASA_URL": "localhost:5005"})


def test_a_token_without_moderators_stops_start_up_with_a_clear_message() -> None:
    with pytest.raises(SettingsError, match="MODERATOR_CHAT_ID"):
        load_settings({**BASE, "TELEGRAM_BOT_TOKEN": "1:abc"})


def test_handover_timing_and_hours_are_read() -> None:
    settings = load_settings(
        {
            **BASE,
            "HANDOVER_WAIT_SECONDS": "120",
            "MODERATOR_HOURS": "09:00-22:00",
            "DATABASE_URL": "postgresql://u@h/db",
        }
    )
    assert settings.handover_wait.total_seconds() == 120
    assert settings.moderator_hours.start is not None
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    with pytest.raises(SettingsError, match="HANDOVER_WAIT_SECONDS"):
        load_settings({**BASE, "HANDOVER_WAIT_SECONDS": "soon"})
    with pytest.raises(SettingsError, match="MODERATOR_HOURS"):
        load_settings({**BASE, "MODERATOR_HOURS": "daytime"})


def test_webhook_mode_needs_a_secret() -> None:
    base = {**BASE, "WEBHOOK_URL": "https://bot.example.org/telegram"}
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET"):
        load_settings(base)
    settings = load_settings({**base, "WEBHOOK_SECRET": "s" * 32, "WEBHOOK_PORT": "9000"})
    assert (settings.webhook_url, settings.webhook_port, settings.webhook_listen) == (
        "https://bot.example.org/telegram",
        9000,
        "127.0.0.1",
    )
    with pytest.raises(SettingsError, match="WEBHOOK_URL"):
        load_settings({**base, "WEBHOOK_URL": "http://bot.example.org/telegram", "WEBHOOK_SECRET": "s" * 32})


def test_privacy_settings_have_safe_defaults_and_bad_values_are_named() -> None:
    settings = load_settings(BASE)
    assert settings.retention.days == 30 and settings.audit_retention.days == 365
    assert settings.tracker_store_url.startswith("sqlite:///") and settings.tracker_store_url.endswith(
        "var/trackers.db"
    )
    second = "Qk9yY2hlc3RyYS1rZXktZm9yLXRlc3RzLW9ubHktMzI="
    settings = load_settings(
        {
            **BASE,
            "TRANSCRIPT_KEYS": f"{TRANSCRIPT_KEY}, {second}",
            "RETENTION_DAYS": "7",
            "TRACKER_STORE_URL": "postgresql://rasa@db/rasa",
        }
    )
    assert settings.transcript_keys == (TRANSCRIPT_KEY, second)
    assert settings.retention.days == 7
    assert settings.tracker_store_url == "postgresql+psycopg://rasa@db/rasa"
    with pytest.raises(SettingsError, match="TRANSCRIPT_KEYS must be set"):
        load_settings({"PSEUDONYM_KEY": KEY})
    with pytest.raises(SettingsError, match="TRANSCRIPT_KEYS: key 2"):
        load_settings({**BASE, "TRANSCRIPT_KEYS": f"{TRANSCRIPT_KEY},not-a-key"})
    with pytest.raises(SettingsError, match="RETENTION_DAYS"):
        load_settings({**BASE, "RETENTION_DAYS": "0"})
    with pytest.raises(SettingsError, match="TRACKER_STORE_URL"):
        load_settings({**BASE, "TRACKER_STORE_URL": "var/trackers.db"})


def test_settings_repr_hides_the_token_keys_and_passwords() -> None:
    settings = load_settings(
        {
            **BASE,
            "TELEGRAM_BOT_TOKEN": "123456:token-secret-part",
            "MODERATOR_CHAT_ID": "-100200",
            "MODERATOR_USER_IDS": "12",
            "DATABASE_URL": "postgresql://signpost:db-password@db.internal:5432/signpost",
            "TRACKER_STORE_URL": "postgresql://rasa:tracker-password@db.internal/rasa",
            "WEBHOOK_URL": "https://bot.example.org/telegram",
            "WEBHOOK_SECRET": "webhook-secret-0123456789",
        }
    )
    shown = repr(settings)
    for secret in (
        KEY,
        TRANSCRIPT_KEY,
        "token-secret-part",
        "db-password",
        "tracker-password",
        "webhook-secret",
    ):
        assert secret not in shown
    assert str(settings) == shown
    # What helps to debug a start-up stays visible.
    assert "db.internal:5432/signpost" in shown
    assert "moderator_chat_id=-100200" in shown
    assert settings.telegram_bot_token == "123456:token-secret-part"  # hidden from view, not changed

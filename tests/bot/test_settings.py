import pytest

from bot.settings import SettingsError, load_settings

KEY = "k" * 40


def test_defaults_fill_in_what_is_optional() -> None:
    settings = load_settings({"PSEUDONYM_KEY": KEY})
    assert settings.rasa_url == "http://localhost:5005"
    assert settings.telegram_bot_token is None
    assert settings.moderator_user_ids == frozenset()


def test_moderator_ids_are_parsed() -> None:
    settings = load_settings(
        {"PSEUDONYM_KEY": KEY, "MODERATOR_USER_IDS": "12, 34,", "MODERATOR_CHAT_ID": "-100200"}
    )
    assert settings.moderator_user_ids == frozenset({12, 34})
    assert settings.moderator_chat_id == -100200


@pytest.mark.parametrize("key", ["", "short", "change-me"])
def test_a_missing_or_weak_pseudonym_key_stops_start_up_with_a_clear_message(key: str) -> None:
    with pytest.raises(SettingsError, match="PSEUDONYM_KEY"):
        load_settings({"PSEUDONYM_KEY": key})


def test_bad_ids_are_reported_by_name() -> None:
    with pytest.raises(SettingsError, match="MODERATOR_USER_IDS"):
        load_settings({"PSEUDONYM_KEY": KEY, "MODERATOR_USER_IDS": "12,bob"})
    with pytest.raises(SettingsError, match="RASA_URL"):
        load_settings({"PSEUDONYM_KEY": KEY, "RASA_URL": "localhost:5005"})

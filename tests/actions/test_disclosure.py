import pytest

from actions.disclosure import (
    age_group_for,
    age_group_from_text,
    disclosure_from_intent,
    is_about_someone_else,
)


@pytest.mark.parametrize(
    "text",
    [
        "my friend is being blackmailed with her nudes",
        "my best mate is getting bullied on insta",
        "my sister's pics got shared round her school",
        "she is being groomed by some guy on roblox",
    ],
)
def test_a_friends_harm_is_recognised_as_about_someone_else(text: str) -> None:
    assert is_about_someone_else(text)


@pytest.mark.parametrize(
    "text",
    [
        "he has my nudes and says hell send them to everyone",
        "my friend sent my pics to the whole year",
        "someone is threatening me",
        "my ex keeps messaging me from new accounts",
        "im being bullied in the group chat",
    ],
)
def test_the_writers_own_harm_is_not_about_someone_else(text: str) -> None:
    assert not is_about_someone_else(text)


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("im 14", "13_17"),
        ("I'm 12", "under_13"),
        ("i am sixteen", "13_17"),
        ("19", "18_plus"),
        ("i'm in year 8", "13_17"),
        ("year 6", "under_13"),
        ("year 13", "13_17"),
        ("under 13", "under_13"),
        ("i'm an adult", "18_plus"),
        ("over 18", "18_plus"),
    ],
)
def test_age_group_is_read_from_what_people_type(text: str, group: str) -> None:
    assert age_group_from_text(text) == group


@pytest.mark.parametrize("text", ["dunno", "old enough", "", "year 27"])
def test_no_age_group_when_no_age_is_given(text: str) -> None:
    assert age_group_from_text(text) is None


def test_age_group_boundaries() -> None:
    assert [age_group_for(a) for a in (12, 13, 17, 18)] == [
        "under_13",
        "13_17",
        "13_17",
        "18_plus",
    ]


def test_only_disclosures_and_risk_count_as_disclosures() -> None:
    assert disclosure_from_intent("disclose_grooming") == "disclose_grooming"
    assert disclosure_from_intent("risk_immediate") == "risk_immediate"
    assert disclosure_from_intent("greet") is None
    assert disclosure_from_intent(None) is None

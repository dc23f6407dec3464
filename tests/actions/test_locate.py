"""Postcodes and place names to the council that runs children's services (real ONS/GeoNames tables)."""

from __future__ import annotations

import pytest

from actions.locate import Gazetteer, Located, NotLocated


def council(places: Gazetteer, text: str) -> str:
    found = places.locate(text)
    assert isinstance(found, Located), (text, found)
    return found.authority.name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LS6 2AB", "Leeds"),
        ("ls6 2ab", "Leeds"),
        ("ls62ab", "Leeds"),
        ("  LS6   2AB ", "Leeds"),
        ("l s 6 2 a b", "Leeds"),
        ("SW1A 1AA", "Westminster"),
        ("m1 1ae", "Manchester"),
        ("EH1 1YZ", "City of Edinburgh"),
        ("CF10 1EP", "Cardiff"),
    ],
)
def test_a_full_postcode_in_any_case_or_spacing(places: Gazetteer, text: str, expected: str) -> None:
    assert council(places, text) == expected
    found = places.locate(text)
    assert isinstance(found, Located) and found.kind == "postcode"


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("LS6", "Leeds", "outward code"),
        ("ls6", "Leeds", "outward code"),
        ("OX16", "Oxfordshire", "outward code"),
        ("ox16 ", "Oxfordshire", "outward code"),
        ("LS6 2", "Leeds", "sector"),
        ("B4", "Birmingham", "outward code"),
    ],
)
def test_a_partial_postcode(places: Gazetteer, text: str, expected: str, kind: str) -> None:
    found = places.locate(text)
    assert isinstance(found, Located) and (found.authority.name, found.kind) == (expected, kind)


def test_an_upper_tier_council_answers_for_a_district_town(places: Gazetteer) -> None:
    # Banbury is in Cherwell district; children's services are Oxfordshire County Council's (E10).
    found = places.locate("Banbury")
    assert isinstance(found, Located)
    assert (found.authority.code, found.authority.name) == ("E10000025", "Oxfordshire")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i live near banbury", "Oxfordshire"),
        ("I need help, I'm in Leeds", "Leeds"),
        ("im from stoke-on-trent", "Stoke-on-Trent"),
        ("we moved to stoke on trent last year", "Stoke-on-Trent"),
        ("my school is in Tower Hamlets", "Tower Hamlets"),
        ("glasgow", "Glasgow City"),
        ("somewhere near Hull", "Kingston upon Hull"),
        ("a village outside York", "York"),
        ("postcode is ls6 2ab thanks", "Leeds"),
        ("Carlisle", "Cumberland"),
        ("harrogate", "North Yorkshire"),
        ("sheffield", "Sheffield"),
    ],
)
def test_places_and_postcodes_inside_sentences(places: Gazetteer, text: str, expected: str) -> None:
    assert council(places, text) == expected


def test_councils_created_since_2021_have_their_current_codes(places: Gazetteer) -> None:
    for text, code in [("CA1 1AA", "E06000063"), ("BA1 1AA", "E06000022"), ("TA1 1AA", "E06000066")]:
        found = places.locate(text)
        assert isinstance(found, Located) and found.authority.code == code, text


def test_an_outward_code_split_between_councils_is_answered_with_the_bigger_share_and_flagged(
    places: Gazetteer,
) -> None:
    found = places.locate("B36")
    assert isinstance(found, Located)
    assert found.authority.name == "Solihull" and found.ambiguous
    assert [a.name for a in found.others] == ["Birmingham"]
    assert found.share is not None and 0.5 < found.share < 1
    assert found.as_json()["ambiguous"] is True


def test_a_place_name_shared_by_two_towns_is_flagged(places: Gazetteer) -> None:
    found = places.locate("richmond")
    assert isinstance(found, Located) and found.ambiguous


def test_everyday_words_count_as_places_only_with_a_capital(places: Gazetteer) -> None:
    assert isinstance(places.locate("i was reading a book"), NotLocated)
    assert council(places, "I live in Reading") == "Reading"
    # "b4" is text-speak for "before" in a sentence; alone, or in capitals, it is Birmingham's B4.
    assert isinstance(places.locate("call me b4 school"), NotLocated)


@pytest.mark.parametrize("text", ["", "help me", "xyzzy", "im 13 and in year 9", "ZZ9 9ZZ", "Q1"])
def test_unknown_text_is_not_located(places: Gazetteer, text: str) -> None:
    found = places.locate(text)
    assert isinstance(found, NotLocated) and found.reason == "unknown"
    assert "postcode" in found.message()


def test_northern_ireland_is_recognised_and_said_to_be_unsupported(places: Gazetteer) -> None:
    for text in ("BT7 1NN", "belfast"):
        found = places.locate(text)
        assert isinstance(found, NotLocated) and found.reason == "northern_ireland", text
        assert "Health and Social Care Trusts" in found.message()


@pytest.mark.parametrize("text", ["i live in wales", "Wales", "we're in Scotland", "england"])
def test_a_nation_is_not_a_place_to_look_a_council_up_by(places: Gazetteer, text: str) -> None:
    # A village called Wales is in Rotherham: "I live in Wales" must not find Rotherham's council.
    found = places.locate(text)
    assert isinstance(found, NotLocated) and found.reason == "nation", text
    assert "town" in found.message()
    northern_ireland = places.locate("i work in Northern Ireland")
    assert isinstance(northern_ireland, NotLocated) and northern_ireland.reason == "northern_ireland"


def test_london_asks_which_borough(places: Gazetteer) -> None:
    found = places.locate("i live in london")
    assert isinstance(found, NotLocated) and found.reason == "region"
    assert len(found.options) == 33

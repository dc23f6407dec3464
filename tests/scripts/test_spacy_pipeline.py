"""The project's spaCy pipeline finds UK places and postcodes as `location` (run in the Rasa env)."""

from __future__ import annotations

import json
import subprocess

import pytest

from scripts.stack import ROOT

PIPELINE = ROOT / "build" / "spacy" / "en_signpost"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
PROBE = """
import json, sys, spacy
nlp = spacy.load(sys.argv[1])
print(json.dumps([[e.text for e in nlp(t).ents if e.label_ == "location"] for t in sys.argv[2:]]))
"""


def locations(*texts: str) -> list[list[str]]:
    if not PIPELINE.exists():
        pytest.skip("spaCy pipeline not built: run `make setup` (make test does)")
    done = subprocess.run(
        [str(RASA_PYTHON), "-c", PROBE, str(PIPELINE), *texts],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_places_postcodes_and_authorities_are_found_in_sentences() -> None:
    assert locations(
        "i live near banbury",
        "my postcode is LS6 2AB",
        "im in M1",
        "is there anything in tower hamlets",
        "Cardiff",
    ) == [["banbury"], ["LS6 2AB"], ["M1"], ["tower hamlets"], ["Cardiff"]]


def test_everyday_words_that_are_also_places_need_a_capital() -> None:
    assert locations("i was reading at the bus stop", "I live in Reading") == [[], ["Reading"]]


def test_text_speak_is_not_mistaken_for_a_postcode() -> None:
    assert locations("l8r h8 gr8 b4 m1") == [[]]
    assert locations("near b4 7dr") == [["b4 7dr"]]


def test_place_names_match_whatever_the_case_as_phrases() -> None:
    assert locations("im in TOWER HAMLETS", "near Stoke-On-Trent", "milton keynes pls") == [
        ["TOWER HAMLETS"],
        ["Stoke-On-Trent"],
        ["milton keynes"],
    ]

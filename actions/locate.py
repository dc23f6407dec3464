"""Which council runs children's services where someone is: from a postcode (full or partial) or a
place name, also inside a sentence ("i live near banbury").

The tables are built from ONS and GeoNames data by `scripts/build_geo.py` (`make setup`). England,
Wales and Scotland resolve to the upper-tier council; Northern Ireland is recognised but its children's
services (Health and Social Care Trusts) are not looked up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

# Another authority holding at least this share of an outward code or sector makes the answer ambiguous.
AMBIGUOUS_SHARE = 0.01
# A same-named place at least this big (relative to the biggest) makes a place name ambiguous.
AMBIGUOUS_PLACE = 0.1
MAX_PLACE_WORDS = 5
NORTHERN_IRELAND = "Northern Ireland"
# The UK's nations by name: not places to look a council up by (a village called Wales is in Rotherham).
NATIONS = frozenset({"england", "wales", "scotland", "northern ireland", "great britain", "united kingdom"})

OUTWARD = r"[A-Z]{1,2}[0-9][A-Z0-9]?"
FULL_POSTCODE = re.compile(rf"(?<![A-Z0-9])({OUTWARD})\s*([0-9])\s*([A-Z]{{2}})(?![A-Z0-9])")
SECTOR = re.compile(rf"(?<![A-Z0-9])({OUTWARD})\s+([0-9])(?![A-Z0-9])")
OUTWARD_ALONE = re.compile(rf"(?<![A-Z0-9])({OUTWARD})(?![A-Z0-9])")
WORD = re.compile(r"[A-Za-z][A-Za-z'’.]*")


@dataclass(frozen=True)
class Authority:
    """A council (or, in Northern Ireland, a district)."""

    code: str
    name: str
    nation: str


@dataclass(frozen=True)
class Located:
    """Where someone is: the council responsible for children's services."""

    authority: Authority
    matched: str
    kind: str  # postcode, sector, outward code or place
    ambiguous: bool = False
    share: float | None = None
    others: tuple[Authority, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        """Return the `locate` command's JSON answer."""
        out: dict[str, Any] = {
            "code": self.authority.code,
            "name": self.authority.name,
            "nation": self.authority.nation,
            "matched": self.matched,
            "kind": self.kind,
            "ambiguous": self.ambiguous,
        }
        if self.share is not None:
            out["share"] = round(self.share, 3)
        if self.others:
            out["also"] = [{"code": a.code, "name": a.name} for a in self.others]
        return out


@dataclass(frozen=True)
class NotLocated:
    """Why no single council can be given."""

    reason: str  # unknown, northern_ireland, region or nation
    matched: str = ""
    options: tuple[Authority, ...] = field(default_factory=tuple)

    def message(self) -> str:
        """Return a plain explanation for the command line."""
        if self.reason == "northern_ireland":
            return (
                f"{self.matched!r} is in Northern Ireland, where children's social care is run by five "
                "Health and Social Care Trusts, not councils. Signpost does not look those up yet: "
                "national services still apply."
            )
        if self.reason == "nation":
            return f"{self.matched!r} is a whole nation. Give a town, a council's name or a postcode."
        if self.reason == "region":
            return (
                f"{self.matched!r} covers {len(self.options)} councils. Give the borough or town, "
                "or a postcode."
            )
        return "Could not tell where that is. Try a postcode (like LS6 2AB or LS6) or a town or city name."


class Gazetteer:
    """The location tables, with lookups."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self.authorities = {
            code: Authority(code, value["name"], value["nation"])
            for code, value in tables["authorities"].items()
        }
        self.outward: dict[str, list[list[Any]]] = tables["outward"]
        self.sectors: dict[str, list[list[Any]]] = tables["sectors"]
        self.units: dict[str, dict[str, str]] = tables["units"]
        self.places = {normalise(key): value for key, value in tables["places"].items()}
        self.capitalised_only = {normalise(key) for key in tables["capitalised_only"]}
        self.regions: dict[str, list[str]] = tables["regions"]

    def locate(self, text: str) -> Located | NotLocated:
        """Return the council for the first postcode or place found in the text."""
        found = self.postcode(text) or self.place(text)
        if found is None:
            return NotLocated("unknown")
        if isinstance(found, Located) and found.authority.nation == NORTHERN_IRELAND:
            return NotLocated("northern_ireland", found.matched)
        return found

    def postcode(self, text: str) -> Located | None:
        """Return the council for a full postcode, a sector ("LS6 2") or an outward code ("LS6")."""
        upper = text.upper()
        squeezed = re.sub(r"[^A-Z0-9]", "", upper)
        candidates = [upper]
        if len(squeezed) <= 7:  # "l s 6 2 a b", "ls6-2ab": the whole message is the postcode
            candidates.insert(0, squeezed)
        for candidate in candidates:
            for match in FULL_POSTCODE.finditer(candidate):
                outward, digit, unit = match.groups()
                sector = f"{outward} {digit}"
                if sector in self.sectors:
                    code = self.units.get(sector, {}).get(unit) or self.sectors[sector][0][0]
                    return Located(self.authorities[code], f"{sector}{unit}", "postcode")
                if outward in self.outward:
                    return self.ranked(self.outward[outward], outward, "outward code")
        for match in SECTOR.finditer(upper):
            sector = f"{match.group(1)} {match.group(2)}"
            if sector in self.sectors:
                return self.ranked(self.sectors[sector], sector, "sector")
        alone = text.strip()
        for match in OUTWARD_ALONE.finditer(upper):
            outward = match.group(1)
            original = text[match.start() : match.end()]
            # "b4" and "m8" are also text-speak: alone in a sentence they count only in capitals.
            short = len(outward) == 2 and original != outward and alone.upper() != outward
            if outward in self.outward and not short:
                return self.ranked(self.outward[outward], outward, "outward code")
        return None

    def ranked(self, counts: list[list[Any]], matched: str, kind: str) -> Located:
        """Return the council with most postcodes, flagging others that hold a real share."""
        total = sum(count for _, count in counts)
        top_code, top_count = counts[0]
        others = tuple(
            self.authorities[code] for code, count in counts[1:] if count / total >= AMBIGUOUS_SHARE
        )
        return Located(
            self.authorities[top_code], matched, kind, bool(others), share=top_count / total, others=others
        )

    def place(self, text: str) -> Located | NotLocated | None:
        """Return the council for the first place name in the text (longest name first)."""
        words = [(m.group(0), normalise(m.group(0))) for m in WORD.finditer(text.replace("-", " "))]
        for start in range(len(words)):
            for size in range(min(MAX_PLACE_WORDS, len(words) - start), 0, -1):
                span = words[start : start + size]
                key = " ".join(norm for _, norm in span)
                if key in NATIONS:  # a nation, never the village of Wales near Rotherham
                    reason = "northern_ireland" if key == "northern ireland" else "nation"
                    return NotLocated(reason, " ".join(w for w, _ in span))
                if key in self.regions:
                    options = tuple(self.authorities[c] for c in self.regions[key])
                    return NotLocated("region", " ".join(w for w, _ in span), options)
                entries = self.places.get(key)
                if not entries:
                    continue
                if key in self.capitalised_only and not all(w[0].isupper() for w, _ in span):
                    continue
                return self.place_answer(entries, " ".join(w for w, _ in span))
        return None

    def place_answer(self, entries: list[list[Any]], matched: str) -> Located:
        """Return the biggest same-named place's council, flagging others of a similar size."""
        top_code, top_population, _ = entries[0]
        others = tuple(
            self.authorities[code]
            for code, population, _ in entries[1:]
            if population >= AMBIGUOUS_PLACE * top_population and code != top_code
        )
        return Located(self.authorities[top_code], matched, "place", bool(others), others=others)


def normalise(name: str) -> str:
    """Return a place name in the form used as a key: lower case, no dots or apostrophes."""
    cleaned = re.sub(r"['’.]", "", name.lower().replace("-", " ").replace("&", " and "))
    return re.sub(r"\s+", " ", cleaned).strip()


@lru_cache(maxsize=2)
def gazetteer(path: Path) -> Gazetteer:
    """Return the gazetteer built from the tables file (read once per process)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make setup` to build the location tables")
    return Gazetteer(json.loads(path.read_text(encoding="utf-8")))

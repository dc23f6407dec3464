"""Freshness of docs/sources.md, and every number or address users read that no source covers
(`make sources`; issue 15).

- Every source line (a bullet starting "- **Source") carries the date it was last checked: a
  "Checked: YYYY-MM-DD" (or "Checked YYYY-MM-DD") on the line itself or in the lines under it, before
  the next source line or heading. Lines with no date are listed as UNDATED.
- Sources last checked more than 12 months ago (365 days) are listed as STALE.
- Every phone number, short code and web address in domain.yml's responses, and every phone number
  and web address of a service in data/directory/seed.json, must appear in docs/sources.md; every
  seed service must name an item of docs/sources.md that exists. Those that don't are UNCOVERED.

Exit status 1 when anything is UNDATED or UNCOVERED (tests/scripts/test_sources.py runs the same
check, so `make test` fails on a number without a source); STALE sources fail only with --strict,
which is the check to run before a release (README, "Before a release").

    .venv/bin/python -m scripts.sources [--today YYYY-MM-DD] [--strict]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "docs" / "sources.md"
DOMAIN = ROOT / "domain.yml"
SEED = ROOT / "data" / "directory" / "seed.json"
MAX_AGE = dt.timedelta(days=365)

# Phone numbers and short codes as written for people: "0800 1111", "116 123", "85258", "999", "101".
PHONE = re.compile(r"(?<![\d£])(?:0\d{3} ?\d{3,4} ?\d{0,4}|\d{3} \d{3}|\d{5}|999|101)(?![\d%])")
WEB = re.compile(r"\b[a-z0-9.-]+\.(?:org\.uk|police\.uk|org|gov\.uk|com)(?:/[a-z0-9/-]*)?", re.IGNORECASE)
SOURCE_LINE = re.compile(r"^- \*\*Sources?\b")
BLOCK_END = re.compile(r"^(?:#{1,3} |---\s*$|- \*\*Sources?\b)")
CHECKED = re.compile(r"checked:?(?:\*\*)?:?\s*(\d{4}-\d{2}-\d{2})", re.IGNORECASE)
ITEM = re.compile(r"(?:item|items) ([\dW]+)|\b(W\d+)")


@dataclass(frozen=True)
class SourceLine:
    """One source line of docs/sources.md and the date it was last checked (None if it has none)."""

    line: int
    text: str
    checked: dt.date | None


@dataclass(frozen=True)
class Report:
    """What `make sources` lists."""

    undated: list[SourceLine]
    stale: list[SourceLine]
    uncovered: list[str]

    def failed(self, strict: bool = False) -> bool:
        """True when the check fails: anything undated or uncovered, or (strict) anything stale."""
        return bool(self.undated or self.uncovered or (strict and self.stale))


def source_lines(markdown: str) -> list[SourceLine]:
    """Return every source line with the date checked found on it or in the lines under it."""
    lines = markdown.splitlines()
    found = []
    for index, line in enumerate(lines):
        if not SOURCE_LINE.match(line):
            continue
        block = [line]
        for following in lines[index + 1 :]:
            if BLOCK_END.match(following):
                break
            block.append(following)
        dates = [dt.date.fromisoformat(d) for d in CHECKED.findall("\n".join(block))]
        found.append(SourceLine(index + 1, line[:120], max(dates) if dates else None))
    return found


def _squash(text: str) -> str:
    return text.replace(" ", "").lower()


def uncovered(markdown: str, domain: dict[str, Any], seed: list[dict[str, Any]]) -> list[str]:
    """Return each number, address or seed service users can read that docs/sources.md doesn't cover."""
    squashed = _squash(markdown)
    texts = [v["text"] for variants in domain["responses"].values() for v in variants if "text" in v]
    numbers = {m.group(0).strip() for text in texts for m in PHONE.finditer(text)}
    numbers |= {phone["number"] for service in seed for phone in service.get("phones", [])}
    addresses = {m.group(0).lower().rstrip("/.") for text in texts for m in WEB.finditer(text)}
    addresses |= {
        s["url"].split("://", 1)[1].removeprefix("www.").rstrip("/").lower() for s in seed if s.get("url")
    }
    missing = [f"number {n}" for n in sorted(numbers) if _squash(n) not in squashed]
    missing += [f"address {a}" for a in sorted(addresses) if a not in markdown.lower()]
    for service in seed:
        items = ITEM.findall(service.get("x_signpost_source", ""))
        headings = [f"## {item or worker}." for item, worker in items]
        if not headings or any(h not in markdown for h in headings):
            missing.append(f"service {service['name']} (source: {service.get('x_signpost_source')!r})")
    return missing


def check(markdown: str, domain: dict[str, Any], seed: list[dict[str, Any]], today: dt.date) -> Report:
    """Check docs/sources.md against what users read, as of `today`."""
    lines = source_lines(markdown)
    return Report(
        undated=[s for s in lines if s.checked is None],
        stale=[s for s in lines if s.checked is not None and today - s.checked > MAX_AGE],
        uncovered=uncovered(markdown, domain, seed),
    )


def check_repository(today: dt.date) -> Report:
    """Check this repository's docs/sources.md, domain.yml and seed directory."""
    return check(
        SOURCES.read_text(encoding="utf-8"),
        yaml.safe_load(DOMAIN.read_text(encoding="utf-8")),
        json.loads(SEED.read_text(encoding="utf-8")),
        today,
    )


def main(argv: list[str] | None = None) -> int:
    """Print the report; return 1 if the check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date.today())
    parser.add_argument("--strict", action="store_true", help="also fail on sources older than 12 months")
    args = parser.parse_args(argv)
    report = check_repository(args.today)
    total = len(source_lines(SOURCES.read_text(encoding="utf-8")))
    print(f"docs/sources.md: {total} source lines, as of {args.today}")
    for title, rows in (
        ("UNDATED (no 'Checked' date)", [f"line {s.line}: {s.text}" for s in report.undated]),
        (
            "STALE (last checked over 12 months ago)",
            [f"line {s.line} ({s.checked}): {s.text}" for s in report.stale],
        ),
        ("UNCOVERED (shown to users, no source in docs/sources.md)", report.uncovered),
    ):
        print(f"\n{title}: {len(rows)}")
        for row in rows:
            print(f"  {row}")
    failed = report.failed(args.strict)
    print("\n" + ("FAILED" if failed else "OK"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

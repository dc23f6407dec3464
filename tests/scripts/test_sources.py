"""`make sources` (scripts/sources.py): dated sources, stale ones listed, and no number or address shown
to users without a source. The last test is the gate that makes `make test` fail (issue 15)."""

from __future__ import annotations

import datetime as dt

import pytest

from scripts import sources

TODAY = dt.date(2026, 12, 7)
MARKDOWN = """# Sources

## 1. Childline

- **Source 1:** Childline page
- **URL:** https://www.childline.org.uk/
- **Checked:** 2026-11-24
- **Stored page said:** "call 0800 1111"
- **Source 2 (older):** an old page, https://example.org/old Checked: 2024-01-02.
- **Source 3:** no date at all

### 1a. A sub-item

- **Checked:** 2026-11-24 (belongs to no source line above: a heading ends the block)
"""
DOMAIN = {"responses": {"utter_a": [{"text": "Call Childline on 0800 1111 or see childline.org.uk"}]}}
SEED = [
    {"name": "Childline", "phones": [{"number": "0800 1111"}], "x_signpost_source": "docs/sources.md item 1"}
]


def test_each_source_line_gets_the_date_checked_under_it() -> None:
    lines = sources.source_lines(MARKDOWN)
    assert [s.checked for s in lines] == [dt.date(2026, 11, 24), dt.date(2024, 1, 2), None]


def test_undated_and_stale_sources_are_listed() -> None:
    report = sources.check(MARKDOWN, DOMAIN, SEED, TODAY)
    assert [s.text for s in report.undated] == ["- **Source 3:** no date at all"]
    assert [s.checked for s in report.stale] == [dt.date(2024, 1, 2)]
    assert report.uncovered == []
    assert report.failed()
    fresh = sources.check(MARKDOWN, DOMAIN, SEED, dt.date(2025, 1, 1))
    assert fresh.stale == []


def test_a_number_or_address_without_a_source_is_uncovered() -> None:
    domain = {"responses": {"utter_a": [{"text": "Call 0808 123 4567 or see made-up.org.uk"}]}}
    seed = [
        *SEED,
        {"name": "Nowhere", "phones": [{"number": "0300 000 0000"}], "x_signpost_source": "item 99"},
    ]
    uncovered = sources.uncovered(MARKDOWN, domain, seed)
    assert "number 0808 123 4567" in uncovered and "number 0300 000 0000" in uncovered
    assert "address made-up.org.uk" in uncovered
    assert any(u.startswith("service Nowhere") for u in uncovered)


@pytest.mark.parametrize("strict", [False, True])
def test_stale_sources_fail_only_when_strict(strict: bool) -> None:
    report = sources.Report(undated=[], stale=[sources.SourceLine(1, "x", dt.date(2020, 1, 1))], uncovered=[])
    assert report.failed(strict) is strict


def test_the_repository_has_no_number_without_a_source_and_no_undated_source() -> None:
    """`make test` runs this: a phone number, address or seed service nobody sourced fails the build."""
    report = sources.check_repository(TODAY)
    assert len(sources.source_lines(sources.SOURCES.read_text(encoding="utf-8"))) > 100
    assert report.uncovered == [], report.uncovered
    assert report.undated == [], [s.text for s in report.undated]


def test_main_prints_the_report_and_passes_on_this_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert sources.main(["--today", "2026-12-07"]) == 0
    out = capsys.readouterr().out
    assert "UNCOVERED" in out and "STALE" in out and out.rstrip().endswith("OK")

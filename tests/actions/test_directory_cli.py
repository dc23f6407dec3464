"""The `python -m actions.directory` command line contract, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .test_hsds import FIXTURE_ID, ROOT, oruk_path


def directory(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run(
        [sys.executable, "-m", "actions.directory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_creates_the_schema_and_accepts_the_oruk_example(fresh_url: str) -> None:
    done = directory(fresh_url, "import", str(oruk_path()))
    assert done.returncode == 0, done.stderr
    assert "1 new" in done.stdout
    again = directory(fresh_url, "import", str(oruk_path()))
    assert again.returncode == 0 and "0 new, 1 updated" in again.stdout


def test_export_round_trips_through_import(fresh_url: str, tmp_path: Path) -> None:
    directory(fresh_url, "ready")
    directory(fresh_url, "import", str(oruk_path()))
    exported = directory(fresh_url, "export")
    assert exported.returncode == 0
    dump = tmp_path / "export.json"
    dump.write_text(exported.stdout, encoding="utf-8")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert directory(other, "import", str(dump)).returncode == 0
    assert directory(other, "export").stdout == exported.stdout
    one = json.loads(directory(fresh_url, "export", "--id", FIXTURE_ID).stdout)
    assert one["id"] == FIXTURE_ID
    assert directory(fresh_url, "export", "--id", "no-such-id").returncode == 1


def test_a_file_with_a_bad_record_writes_nothing_and_fails(fresh_url: str, tmp_path: Path) -> None:
    good = json.loads(oruk_path().read_text(encoding="utf-8"))
    bad = dict(good, id="bad-1", minimum_age=-3)
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([good, bad]), encoding="utf-8")
    done = directory(fresh_url, "import", str(path))
    assert done.returncode == 1
    assert "record bad-1: minimum_age" in done.stderr and "Nothing imported" in done.stderr
    assert json.loads(directory(fresh_url, "export").stdout) == []


def test_locate_prints_the_council_as_json(fresh_url: str) -> None:
    done = directory(fresh_url, "locate", "i live near banbury")
    assert done.returncode == 0
    answer = json.loads(done.stdout)
    assert (answer["code"], answer["name"], answer["ambiguous"]) == ("E10000025", "Oxfordshire", False)


def test_locate_says_when_an_outward_code_is_ambiguous(fresh_url: str) -> None:
    done = directory(fresh_url, "locate", "B36")
    assert done.returncode == 0 and json.loads(done.stdout)["ambiguous"] is True
    assert "Ambiguous" in done.stderr


def test_locate_exits_3_with_a_clear_message_when_it_cannot_tell(fresh_url: str) -> None:
    done = directory(fresh_url, "locate", "somewhere nice")
    assert done.returncode == 3 and done.stdout == ""
    assert "postcode" in done.stderr


def test_find_lists_local_then_national_services(fresh_url: str) -> None:
    done = directory(fresh_url, "find", "--near", "I need help, I'm in Leeds", "--age", "15", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["area"]["name"] == "Leeds"
    assert {s["name"] for s in found["local"]} >= {"MindMate (Leeds)"}
    assert found["national"] and all(not s["local"] for s in found["national"])
    text = directory(fresh_url, "find", "--near", "LS6", "--need", "mental_health")
    assert "MindMate (Leeds)" in text.stdout and "Last checked" in text.stdout

"""The sentence-vote classifier's rules (rasa_addons/classifiers.py), checked in the Rasa environment."""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path

import pytest

from scripts.stack import RASA, ROOT

CHECKS = Path(__file__).with_name("classifier_checks.py")
NAMES = sorted(
    line.split("(")[0].removeprefix("def ")
    for line in CHECKS.read_text(encoding="utf-8").splitlines()
    if line.startswith("def check_")
)


@cache
def results() -> dict[str, str]:
    python = RASA.with_name("python")
    if not python.exists():
        pytest.skip("no Rasa environment: run `make setup` (make test does)")
    done = subprocess.run(
        [str(python), str(CHECKS)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_check_ran() -> None:
    assert len(NAMES) >= 8
    assert sorted(results()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_classifier_rule(name: str) -> None:
    assert results()[name] == "ok", results()[name]

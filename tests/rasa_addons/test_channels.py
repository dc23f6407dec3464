"""The REST channel that logs no message (rasa_addons/channels.py), checked in the Rasa environment."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from tests.rasa_addons.rasa_env import run_in_rasa_env

CHECKS = Path(__file__).with_name("channel_checks.py")
NAMES = sorted(
    line.split("(")[0].removeprefix("def ")
    for line in CHECKS.read_text(encoding="utf-8").splitlines()
    if line.startswith("def check_")
)


@cache
def results() -> dict[str, str]:
    return run_in_rasa_env(CHECKS)


def test_every_check_ran() -> None:
    assert len(NAMES) >= 3
    assert sorted(results()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_rest_channel(name: str) -> None:
    assert results()[name] == "ok", results()[name]

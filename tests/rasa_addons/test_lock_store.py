"""The lock store several Rasa servers share keeps one conversation's turns apart.

Runs the Rasa environment's Python (the store imports Rasa) against the Redis at TEST_REDIS_URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.stack import RASA, ROOT

CONTEND = Path(__file__).with_name("contend.py")


def contend(store: str, processes: int, rounds: int) -> dict:
    """Run contend.py in the Rasa environment and return what it counted."""
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("TEST_REDIS_URL is not set: the shared lock store needs Redis")
    python = RASA.with_name("python")
    if not python.exists():
        pytest.skip("no Rasa environment: run `make setup` (make test does)")
    done = subprocess.run(
        [str(python), str(CONTEND), store, redis_url, str(processes), str(rounds)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    sys.stderr.write(done.stderr[-2000:])
    assert done.returncode == 0
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_servers_taking_one_conversations_lock_at_once_never_overlap() -> None:
    result = contend("rasa_addons.lock_store.SerialRedisLockStore", processes=4, rounds=50)
    assert result["exit_codes"] == [0, 0, 0, 0]  # nobody was refused the lock
    assert result["count"] == result["expected"] == 200  # no two turns overlapped

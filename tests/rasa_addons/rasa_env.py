"""Running a check script with the Rasa environment's Python (our tests run in the app environment)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scripts.stack import RASA, ROOT


def run_in_rasa_env(script: Path, *needs: Path) -> dict:
    """Run the script in the Rasa environment and return the JSON its last line prints.

    Skips, with the reason, when the Rasa environment (or a file the script needs) is not built yet.
    """
    python = RASA.with_name("python")
    if not python.exists() or not all(path.exists() for path in needs):
        pytest.skip("no Rasa environment or MiniLM model: run `make setup` (make test does)")
    done = subprocess.run(
        [str(python), str(script)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])

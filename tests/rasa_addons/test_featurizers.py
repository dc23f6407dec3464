"""The compiled language-model featurizer gives Rasa's own features (Rasa environment, build/minilm)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scripts.stack import RASA, ROOT

COMPARE = Path(__file__).with_name("compare_features.py")


def test_compiled_featurizer_gives_the_same_features_as_rasas_own_for_any_batch() -> None:
    python = RASA.with_name("python")
    if not python.exists() or not (ROOT / "build" / "minilm" / "config.json").exists():
        pytest.skip("no Rasa environment or MiniLM model: run `make setup` (make test does)")
    done = subprocess.run(
        [str(python), str(COMPARE)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["largest_difference"] < 1e-4  # float rounding only
    assert result["traces"] == 1  # compiled once, whatever the batch size or length

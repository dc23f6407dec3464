"""The compiled language-model featurizer gives Rasa's own features (Rasa environment, build/minilm)."""

from __future__ import annotations

from pathlib import Path

from scripts.stack import ROOT
from tests.rasa_addons.rasa_env import run_in_rasa_env

COMPARE = Path(__file__).with_name("compare_features.py")


def test_compiled_featurizer_gives_the_same_features_as_rasas_own_for_any_batch() -> None:
    result = run_in_rasa_env(COMPARE, ROOT / "build" / "minilm" / "config.json")
    assert result["largest_difference"] < 1e-4  # float rounding only
    assert result["traces"] == 1  # compiled once, whatever the batch size or length

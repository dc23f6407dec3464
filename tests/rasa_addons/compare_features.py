"""Print how far the compiled featurizer's features are from Rasa's own, for a few batches.

Run with the Rasa environment's Python from the project root (the model is build/minilm).
"""

from __future__ import annotations

import json

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.nlu.featurizers.dense_featurizer.lm_featurizer import LanguageModelFeaturizer

from rasa_addons.featurizers import CompiledLanguageModelFeaturizer

CONFIG = {"model_name": "bert", "model_weights": "build/minilm"}


def build(cls: type) -> LanguageModelFeaturizer:
    context = ExecutionContext(GraphSchema({}), node_name=cls.__name__)
    return cls({**cls.get_default_config(), **CONFIG}, context)


def main() -> None:
    rasa, compiled = build(LanguageModelFeaturizer), build(CompiledLanguageModelFeaturizer)
    rng = np.random.default_rng(7)
    largest = 0.0
    for size, length in [(1, 8), (1, 31), (3, 12), (64, 20)]:
        ids = rng.integers(1000, 20000, size=(size, length)).tolist()
        mask = (rng.random((size, length)) > 0.2).astype(np.float32)
        mask[:, 0] = 1.0
        expected = rasa._compute_batch_sequence_features(mask, ids)
        got = compiled._compute_batch_sequence_features(mask, ids)
        assert got.shape == expected.shape, (got.shape, expected.shape)
        largest = max(largest, float(np.abs(got - expected).max()))
    traces = compiled._forward.experimental_get_tracing_count()
    print(json.dumps({"largest_difference": largest, "traces": traces}))


if __name__ == "__main__":
    main()

"""Rasa's LanguageModelFeaturizer with the language model run as one compiled TensorFlow graph.

Rasa 3.6 calls the Hugging Face model eagerly for every message, so each of its operations goes back
through Python: the profile in docs/benchmarks.md showed MiniLM taking 38% of the Rasa server's time
per message. Wrapping the same call in `tf.function` (traced once, for any batch size and length) gives
the same features (largest difference 2e-6 on our model) about seven times faster. Everything else,
tokenising, padding and the features Rasa builds from the output, is Rasa's own code.

Named in config.yml as `rasa_addons.featurizers.CompiledLanguageModelFeaturizer`, with the same
settings as `LanguageModelFeaturizer`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.featurizers.dense_featurizer.lm_featurizer import LanguageModelFeaturizer

# Token ids and attention mask: any number of messages, any length.
SIGNATURE = (
    tf.TensorSpec(shape=(None, None), dtype=tf.int32),
    tf.TensorSpec(shape=(None, None), dtype=tf.float32),
)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class CompiledLanguageModelFeaturizer(LanguageModelFeaturizer):
    """The same dense features as LanguageModelFeaturizer, from a compiled forward pass."""

    def _load_model_instance(self) -> None:
        """Load the tokenizer and model as Rasa does, then compile the model's forward pass."""
        super()._load_model_instance()
        model = self.model

        @tf.function(input_signature=SIGNATURE)
        def forward(token_ids: tf.Tensor, attention_mask: tf.Tensor) -> tf.Tensor:
            return model(token_ids, attention_mask=attention_mask)[0]

        self._forward = forward

    def _compute_batch_sequence_features(
        self, batch_attention_mask: np.ndarray, padded_token_ids: list[list[int]]
    ) -> Any:
        """Return the model's last hidden states for the padded batch, as Rasa's own method does."""
        hidden = self._forward(
            tf.convert_to_tensor(padded_token_ids, dtype=tf.int32),
            tf.convert_to_tensor(batch_attention_mask, dtype=tf.float32),
        )
        return hidden.numpy()

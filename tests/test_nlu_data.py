"""The training data is big enough where it matters, and the held-out set really is held out."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from scripts import real_messages
from scripts.eval import read_nlu

ROOT = Path(__file__).resolve().parent.parent
DISCLOSURES = (
    "disclose_cyberbullying",
    "disclose_grooming",
    "disclose_harassment",
    "disclose_image_shared",
    "disclose_other_harm",
    "disclose_sextortion",
)


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


TRAINING = [e for path in sorted((ROOT / "nlu").glob("*.yml")) for e in read_nlu(path)]
HOLDOUT = read_nlu(ROOT / "tests" / "nlu_holdout.yml")
WORKER_HOLDOUT = read_nlu(ROOT / "tests" / "nlu_holdout_worker.yml")


def test_each_disclosure_has_at_least_60_examples_and_risk_at_least_80() -> None:
    counts = Counter(intent for intent, _ in TRAINING)
    for intent in DISCLOSURES:
        assert counts[intent] >= 60, intent
    assert counts["risk_immediate"] >= 80


def test_there_are_hard_negatives() -> None:
    counts = Counter(intent for intent, _ in TRAINING)
    assert counts["out_of_scope"] >= 200


def test_no_held_out_message_is_in_the_training_data() -> None:
    training = {normalise(text) for _, text in TRAINING}
    leaked = [text for _, text in HOLDOUT + WORKER_HOLDOUT if normalise(text) in training]
    assert not leaked, leaked[:10]


def test_the_held_out_set_covers_every_disclosure_risk_and_ordinary_messages() -> None:
    counts = Counter(intent for intent, _ in HOLDOUT)
    for intent in (*DISCLOSURES, "risk_immediate"):
        assert counts[intent] >= 30, intent
    assert counts["out_of_scope"] >= 100


def test_no_training_example_is_labelled_twice() -> None:
    labels: dict[str, set[str]] = {}
    for intent, text in TRAINING:
        labels.setdefault(normalise(text), set()).add(intent)
    assert not {t: i for t, i in labels.items() if len(i) > 1}


def test_every_worker_topic_has_training_and_held_out_questions() -> None:
    topics = {intent for intent, _ in TRAINING if intent.startswith("worker_")}
    assert len(topics) >= 13
    trained = Counter(intent for intent, _ in TRAINING)
    held_out = Counter(intent for intent, _ in WORKER_HOLDOUT)
    for topic in topics:
        assert trained[topic] >= 40, topic
        assert held_out[topic] >= 10, topic


REAL = real_messages.load(intents=real_messages.domain_intents())


def test_the_real_set_has_at_least_400_published_messages_from_many_documents() -> None:
    assert len(REAL) >= 400
    assert len({m.source.id for m in REAL}) >= 100
    counts = Counter(m.label for m in REAL)
    assert sum(n for label, n in counts.items() if label.startswith("disclose_")) >= 100
    assert counts["risk_immediate"] >= 20 and counts["distress"] >= 20
    assert sum(n for label, n in counts.items() if label.startswith("worker_")) >= 60
    assert counts["out_of_scope"] >= 100


def test_every_real_message_says_where_and_when_it_was_published() -> None:
    assert REAL
    for message in REAL:
        assert message.source.url.startswith(("http://", "https://")), message.source.id
        assert message.source.accessed != "unknown", message.source.id


def test_no_real_message_is_copied_into_the_written_training_data() -> None:
    """The written examples must never quote the real set: it would measure us, not real people."""
    written = {normalise(text) for _, text in TRAINING}
    real = {real_messages.normalise(m.text).replace(" ", "") for m in REAL}
    copied = [text for text in written if text.replace(" ", "") in real]
    assert REAL and not copied, copied[:5]


def test_the_folds_never_split_a_source_document() -> None:
    folds = real_messages.folds(REAL, 5)
    homes: dict[str, set[int]] = {}
    for index, fold in enumerate(folds):
        for message in fold:
            homes.setdefault(message.source.id, set()).add(index)
    assert sum(len(f) for f in folds) == len(REAL)
    assert all(len(h) == 1 for h in homes.values())
    assert max(map(len, folds)) - min(map(len, folds)) <= 10

"""A second opinion on DIET's intent from the sentence encoder, read one sentence at a time.

DIET learns the words of our training data; on real young people's messages it missed most
disclosures (issue 13). The sentence encoder (all-MiniLM-L6-v2, features from the featurizer before
this component) places a message by meaning instead. This component:

1. averages the encoder's token vectors into one vector for the message, and one for each sentence;
2. scores the intents with a logistic regression on those vectors (trained on the same data as DIET);
3. votes: the intent ranking becomes `weight` of the encoder's scores plus the rest of DIET's;
4. prefers a false alarm to a missed disclosure: disclosure and danger intents are scaled by
   `alarm_boost` before the vote is normalised;
5. reads a long message one sentence at a time: if the most alarming sentence scores at least
   `sentence_threshold` for a disclosure or danger, that intent decides (a young person's long account
   mentions the harm once, in the middle) - unless the whole message is read as ordinary with at least
   `ordinary_hold` confidence, or it is written as a worker's, about a child in their care
   (`perspective`), where a harm in one sentence is the subject of their question;
6. never lets danger words pass: a message that uses a phrase of the `danger_lookups` tables (the
   training data's own lookup tables, "kill myself", "self-harm" ... in any word form: "self-harming",
   "ending it all") in the writer's own voice, not negated ("i'd never"), is danger. A means of harm
   (`means_lookups`: pills, blade ...) is danger when the vote also sees some danger in the message, and
   so is a message DIET alone is sure is danger (`diet_danger`) if the encoder sees at least a little
   danger in it too (`diet_danger_support`): DIET's certainty alone read much low mood as danger;
7. weighs workers' questions together: when the worker intents' scores together outweigh the top
   ordinary reading `worker_mass` times, the likeliest worker question is the answer (a worker's long
   question spreads its score over several topics); but a message in the writer's own voice (at least
   `first_person`) read as a worker question goes to its likeliest disclosure when the disclosures
   together reach `young_alarm` of the worker reading (a young person who mentions school or a teacher);
8. never reads as a worker's question the message of a writer who is not writing as a worker: one who
   gives their own age as under 18 ("I'm 15", "as a 14-year-old", "I'm in year 9"), or, with no
   worker's words, a parent about their child ("my daughter") or a writer telling of themselves (at
   least `own_account` of "I/me/my"). Their worker readings are dropped, whatever words they share
   with a worker's question ("students", "nudes", "school"), except that a worker topic that names a
   harm (sextortion, nudes shared) counts for that harm.

Named in config.yml after DIETClassifier and before FallbackClassifier. Plain functions below do the
work and are tested without Rasa (tests/rasa_addons/test_classifiers.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

RISK_INTENT = "risk_immediate"
DISCLOSURE_PREFIX = "disclose_"
WORKER_PREFIX = "worker_"
SENTENCE_END = re.compile(r"[.!?\n]+|…")
FIRST_PERSON = re.compile(r"\b(?:i|me|my|mine|myself|im|i'm|ive|i've|id|i'd|ill|i'll)\b", re.IGNORECASE)
# Words a worker uses for the young people in their care, and for their work.
WORKER_VOICE = re.compile(
    r"\b(?:pupils?|students?|learners?|year \d+s|my (?:tutees?|tutor group|caseload|setting)|"
    r"our (?:school|pupils|students|setting|dsl)|"
    r"a (?:child|young person|pupil|student) (?:in|on|at|i|we|who)|"
    r"safeguarding|dsl|dsls|colleagues?|staff|slt|caseload|referral|social worker|as a (?:teacher|social "
    r"worker|dsl|youth worker|nurse))\b",
    re.IGNORECASE,
)


AGES = r"(?:1[0-7]|[89]|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen)"
# "I'm 15", "i am 13 years old", "I'm just a 16-year-old", ", as a 14-year-old," or "im in year 9", but
# not "I'm 15 minutes late", nor "the same interests as a 10-year-old".
YOUNG_SELF = re.compile(
    r"(?:\b(?:i'?m|i am)|(?:^|[,.;:!?]\s*)as)\s+(?:just\s+|only\s+)?(?:an?\s+)?"
    + AGES
    + r"(?![\s-]*(?:minutes?|mins?|hours?|hrs?|seconds?|secs?|%|pounds?|quid|p\b|am\b|pm\b|times?\b))"
    r"(?:[\s-]*(?:years?|yrs?)[\s-]*old|\s*y/?o\b|\b)"
    r"|\b(?:i'?m|i am)\s+(?:only\s+)?in\s+(?:year|yr|y)\s*(?:[5-9]|1[0-3])\b(?!'s)",
    re.IGNORECASE,
)


DANGER_WORDS_SCORE = 0.6  # the least confidence a message with danger words is given for danger


def is_alarm(intent: str) -> bool:
    """Return True for the intents that mean a disclosure or danger."""
    return intent.startswith(DISCLOSURE_PREFIX) or intent == RISK_INTENT


def sentence_spans(text: str, tokens: list[tuple[int, int]], min_tokens: int) -> list[tuple[int, int]]:
    """Return [first, last) token ranges of each sentence with at least `min_tokens` tokens."""
    ends = [m.start() for m in SENTENCE_END.finditer(text)]
    spans: list[tuple[int, int]] = []
    first = 0
    for i, (start, _end) in enumerate(tokens):
        if i > first and any(tokens[i - 1][0] <= e < start for e in ends):
            spans.append((first, i))
            first = i
    spans.append((first, len(tokens)))
    return [(a, b) for a, b in spans if b - a >= min_tokens]


def unit(vectors: np.ndarray) -> np.ndarray:
    """Return each row scaled to length 1 (rows of zeros stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)


def worker_voice(text: str) -> bool:
    """Return True when the message is written as a worker's, about young people in their care."""
    return bool(WORKER_VOICE.search(text))


# "i'd never", "im not", "wouldnt": a danger phrase right after these is not danger (apostrophes removed).
NEGATION = re.compile(r"\b(?:not|never|no|wouldnt|wont|dont)\W+(?:\w+\W+)?$", re.IGNORECASE)
# "self harm videos on my feed" is harmful content seen, not danger to the writer.
CONTENT = re.compile(
    r"^\W+(?:videos?|vids?|content|pics?|pictures?|photos?|images?|posts?|accounts?|pages?|memes?|clips?)\b",
    re.IGNORECASE,
)


def word_forms(phrase: str) -> str:
    """Return a pattern for the phrase with each word in any of its usual forms (harm, harms, harming)."""
    words = []
    for word in re.split(r"[\s-]+", phrase.lower().replace("'", "")):
        stem = word[:-1] if word.endswith("e") and len(word) > 3 else word
        words.append(re.escape(stem) + (r"(?:e|es|s|ed|d|ing|ting|ning)?" if word.isalpha() else ""))
    return r"[\s-]*".join(words)


def lexicon(phrases: list[str]) -> re.Pattern[str] | None:
    """Return one pattern matching any of the phrases in any word form, or None for no phrases."""
    if not phrases:
        return None
    return re.compile(r"\b(?:" + "|".join(sorted({word_forms(p) for p in phrases})) + r")\b", re.IGNORECASE)


def says(pattern: re.Pattern[str] | None, text: str) -> bool:
    """Return True when the text uses a phrase of the pattern, not negated just before it."""
    if pattern is None:
        return False
    plain = text.replace("\u2019", "'").replace("'", "")
    return any(
        not NEGATION.search(plain[max(0, m.start() - 30) : m.start()]) and not CONTENT.match(plain[m.end() :])
        for m in pattern.finditer(plain)
    )


# "my daughter", "our 14-year-old son": a parent writing about their own child.
PARENT_VOICE = re.compile(
    r"\b(?:my|our) (?:(?:\d+|\w+)[ -]year[ -]old )?(?:daughter|son|child|kid|stepson|stepdaughter|"
    r"little boy|little girl|teenager|teen)s?\b|\bmy (?:children)\b",
    re.IGNORECASE,
)
# A worker's question whose topic is a harm: for a writer who is not a worker, it tells of that harm.
HARM_OF_WORKER_TOPIC = {
    "worker_sextortion": "disclose_sextortion",
    "worker_sharing_nudes_guidance": "disclose_image_shared",
}


def not_a_worker(text: str, as_worker: bool, first_person: float, own_account: float) -> bool:
    """Return True when the writer is plainly not asking as a worker (see the module's rule 8)."""
    if young_self(text):
        return True
    return not as_worker and (bool(PARENT_VOICE.search(text)) or first_person >= own_account)


def without_workers(ranking: dict[str, float]) -> dict[str, float]:
    """Return the ranking with no worker reading: a harm's topic counts for the harm, the rest is dropped."""
    kept: dict[str, float] = {}
    for name, p in ranking.items():
        name = HARM_OF_WORKER_TOPIC.get(name, name)
        if not name.startswith(WORKER_PREFIX):
            kept[name] = kept.get(name, 0.0) + p
    total = sum(kept.values())
    return {n: p / total for n, p in kept.items()} if total > 0 else ranking


def young_self(text: str) -> bool:
    """Return True when the writer gives their own age as under 18, or their school year."""
    return bool(YOUNG_SELF.search(text.replace("\u2019", "'").replace("\u2018", "'")))


def perspective(text: str) -> np.ndarray:
    """Return two signals: how much the writer speaks of themselves, and whether they write as a worker."""
    words = max(len(text.split()), 1)
    first = len(FIRST_PERSON.findall(text))
    return np.array([min(1.0, 4.0 * first / words), 1.0 if worker_voice(text) else 0.0])


def softmax(scores: np.ndarray) -> np.ndarray:
    """Return the softmax of each row."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class LinearModel:
    """A multinomial logistic regression stored as plain arrays (no pickles in the model)."""

    def __init__(self, classes: list[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        self.classes = classes
        self.coef = coef
        self.intercept = intercept

    @classmethod
    def fit(cls, x: np.ndarray, labels: list[str], c: float, balanced: bool = True) -> LinearModel:
        """Train on rows `x` with their intents (`balanced`: each intent weighs the same in total)."""
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None)
        model.fit(x, labels)
        coef, intercept = model.coef_, model.intercept_
        if len(model.classes_) == 2:
            # Two classes come back as one score; as two, the softmax gives the same probabilities.
            coef, intercept = (
                np.vstack([-coef / 2, coef / 2]),
                np.concatenate([-intercept / 2, intercept / 2]),
            )
        return cls([str(k) for k in model.classes_], coef, intercept)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Return each row's probability for each class.

        Not `x @ coef.T`: for a product this small, BLAS wakes its thread pool, whose threads then spin
        and doubled the Rasa server's CPU a message (measured). einsum's own loop uses one thread.
        """
        return softmax(np.einsum("ij,kj->ik", x, self.coef) + self.intercept)


def vote(
    diet: dict[str, float], encoder: dict[str, float], weight: float, alarm_boost: float
) -> dict[str, float]:
    """Return the combined ranking: the encoder's share `weight`, alarms scaled by `alarm_boost`."""
    names = set(diet) | set(encoder)
    mixed = {n: (1 - weight) * diet.get(n, 0.0) + weight * encoder.get(n, 0.0) for n in names}
    mixed = {n: p * (alarm_boost if is_alarm(n) else 1.0) for n, p in mixed.items()}
    total = sum(mixed.values()) or 1.0
    return {n: p / total for n, p in mixed.items()}


def most_alarming(sentences: list[dict[str, float]]) -> tuple[str, float] | None:
    """Return the alarm intent of the sentence that scores highest for any alarm, and that score."""
    best: tuple[str, float] | None = None
    for scores in sentences:
        alarm = {n: p for n, p in scores.items() if is_alarm(n)}
        if not alarm:
            continue
        total = sum(alarm.values())
        # Danger in any sentence is danger; otherwise the sentence's likeliest harm.
        name = (
            RISK_INTENT if alarm.get(RISK_INTENT, 0.0) >= 0.5 * total else max(alarm, key=alarm.__getitem__)
        )
        if best is None or total > best[1]:
            best = (name, total)
    return best


@dataclass(frozen=True)
class Rules:
    """The thresholds of `decide`, from config.yml (README "NLU choices" says how each was chosen)."""

    sentence: float = 0.5  # one sentence's alarm score that decides a message read as ordinary
    risk: float = 0.3  # one sentence's danger score that decides a message not read as danger
    ordinary_hold: float = 1.0  # an ordinary reading this sure of the whole is not overruled by a sentence
    worker_floor: float = 1.0  # a worker's likeliest question, at least this likely, beats "not sure"
    worker_mass: float = 0.0  # worker readings together, this many times the top ordinary one, mean a worker
    young_alarm: float = 0.0  # in the first person, alarms together at this share of a worker reading win
    own_account: float = 2.0  # this much "I/me/my", with no worker's words, is the writer's own story
    first_person: float = 0.3  # how much "I/me/my" makes a message the writer's own account


def decide(
    ranking: dict[str, float],
    sentences: list[dict[str, float]],
    rules: Rules,
    as_worker: bool,
    first_person: float = 0.0,
    danger_words: bool = False,
    not_worker: bool = False,
) -> dict[str, float]:
    """Return the ranking, raised to danger, a disclosure or a worker question that the plain vote hid.

    A message in a worker's voice keeps a worker's reading: their likeliest worker question, if it is
    at least `worker_floor` likely, comes first (a worker's long account read as "not sure" otherwise).
    A writer who is plainly not a worker (`not_worker`, see `not_a_worker`) has no worker reading at all.
    """
    if not_worker:
        ranking, as_worker = without_workers(ranking), False
    top = max(ranking, key=ranking.__getitem__)
    workers = {n: p for n, p in ranking.items() if n.startswith(WORKER_PREFIX)}
    best_worker = max(workers, key=workers.__getitem__, default=None)
    if as_worker:
        if best_worker and not top.startswith(WORKER_PREFIX) and workers[best_worker] >= rules.worker_floor:
            return raise_to(ranking, best_worker, workers[best_worker])
        return ranking
    if danger_words and (top != RISK_INTENT or ranking[RISK_INTENT] < DANGER_WORDS_SCORE):
        # Danger first, and sure enough that the fallback after this component never hides it.
        risk = max((s.get(RISK_INTENT, 0.0) for s in sentences), default=0.0)
        return raise_to(ranking, RISK_INTENT, max(risk, DANGER_WORDS_SCORE))
    held = not is_alarm(top) and ranking[top] >= rules.ordinary_hold
    risk = max((s.get(RISK_INTENT, 0.0) for s in sentences), default=0.0)
    if top != RISK_INTENT and not held and rules.risk > 0 and risk >= rules.risk:
        return raise_to(ranking, RISK_INTENT, risk)
    alarms = {n: p for n, p in ranking.items() if is_alarm(n)}
    if (
        top.startswith(WORKER_PREFIX)
        and rules.young_alarm > 0
        and first_person >= rules.first_person
        and alarms
        and sum(alarms.values()) >= rules.young_alarm * ranking[top]
    ):
        return raise_to(ranking, max(alarms, key=alarms.__getitem__), sum(alarms.values()))
    if (
        best_worker
        and rules.worker_mass > 0
        and not top.startswith(WORKER_PREFIX)
        and not is_alarm(top)
        and sum(workers.values()) >= rules.worker_mass * ranking[top]
    ):
        return raise_to(ranking, best_worker, sum(workers.values()))
    if is_alarm(top) or held or rules.sentence <= 0:
        return ranking
    found = most_alarming(sentences)
    if found is None or found[1] < rules.sentence:
        return ranking
    return raise_to(ranking, *found)


def raise_to(ranking: dict[str, float], name: str, score: float) -> dict[str, float]:
    """Return the ranking with `name` first: at `score`, and clearly ahead of the next guess."""
    others = {n: p for n, p in ranking.items() if n != name}
    rest = sum(others.values()) or 1.0
    raised = {n: p * (1 - score) / rest for n, p in others.items()}
    raised[name] = max(score, max(raised.values(), default=0.0) + 0.2)
    total = sum(raised.values())
    return {n: p / total for n, p in raised.items()}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class SentenceVoteClassifier(GraphComponent, IntentClassifier):
    """The sentence encoder's vote beside DIET, and a long message read one sentence at a time."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The settings measured in README "NLU choices"."""
        return {
            "weight": 0.5,
            "alarm_boost": 1.0,
            "sentence_threshold": 0.5,
            "risk_threshold": 0.3,
            "danger_lookups": [],
            "means_lookups": [],
            "means_support": 0.15,
            "diet_danger": 1.1,
            "diet_danger_support": 0.0,
            "ordinary_hold": 1.0,
            "worker_floor": 1.0,
            "worker_mass": 0.0,
            "young_alarm": 0.0,
            "own_account": 2.0,
            "first_person": 0.3,
            "min_sentence_tokens": 3,
            "perspective": True,
            "C": 4.0,
            "balanced": True,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: LinearModel | None = None,
        lookups: dict[str, list[str]] | None = None,
    ) -> None:
        self._config = config
        self._storage = model_storage
        self._resource = resource
        self._model = model
        self._lookups = lookups or {}
        self._danger = lexicon([w for name in config["danger_lookups"] for w in self._lookups.get(name, [])])
        self._means = lexicon([w for name in config["means_lookups"] for w in self._lookups.get(name, [])])
        self._rules = Rules(
            sentence=float(config["sentence_threshold"]),
            risk=float(config["risk_threshold"]),
            ordinary_hold=float(config["ordinary_hold"]),
            worker_floor=float(config["worker_floor"]),
            worker_mass=float(config["worker_mass"]),
            young_alarm=float(config["young_alarm"]),
            own_account=float(config["own_account"]),
            first_person=float(config["first_person"]),
        )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceVoteClassifier:
        """A new, untrained classifier."""
        return cls(config, model_storage, resource)

    def _vectors(self, message: Message) -> tuple[np.ndarray, list[np.ndarray]] | None:
        """Return the message's vector and one per sentence, from the encoder's token vectors."""
        sequence, _ = message.get_dense_features(TEXT)
        if sequence is None:
            return None
        tokens = message.get("text_tokens") or []
        vectors = np.asarray(sequence.features, dtype=np.float32)
        if len(tokens) != len(vectors) or not len(vectors):
            return (unit(vectors.mean(axis=0)), []) if len(vectors) else None
        text = str(message.get(TEXT) or "")
        spans = sentence_spans(text, [(t.start, t.end) for t in tokens], self._config["min_sentence_tokens"])
        sentences = [unit(vectors[a:b].mean(axis=0)) for a, b in spans] if len(spans) > 1 else []
        return unit(vectors.mean(axis=0)), sentences

    def _row(self, vector: np.ndarray, signals: np.ndarray) -> np.ndarray:
        """Return the classifier's input: a vector of the message (or of a sentence) and its perspective."""
        return np.concatenate([vector, signals]) if self._config["perspective"] else vector

    def train(self, training_data: TrainingData) -> Resource:
        """Fit the logistic regression on every intent example's message vector."""
        rows, labels = [], []
        for example in training_data.intent_examples:
            found = self._vectors(example)
            if found is not None:
                rows.append(self._row(found[0], perspective(str(example.get(TEXT) or ""))))
                labels.append(str(example.get(INTENT)))
        self._model = LinearModel.fit(
            np.vstack(rows), labels, float(self._config["C"]), bool(self._config["balanced"])
        )
        wanted = {*self._config["danger_lookups"], *self._config["means_lookups"]}
        lookups = {t["name"]: list(t["elements"]) for t in training_data.lookup_tables if t["name"] in wanted}
        with self._storage.write_to(self._resource) as folder:
            np.savez(folder / "model.npz", coef=self._model.coef, intercept=self._model.intercept)
            (folder / "classes.json").write_text(json.dumps(self._model.classes))
            (folder / "lookups.json").write_text(json.dumps(lookups))
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> SentenceVoteClassifier:
        """The trained classifier, or an untrained one (which changes nothing) if it was never trained."""
        try:
            with model_storage.read_from(resource) as folder:
                arrays = np.load(folder / "model.npz")
                classes = json.loads((folder / "classes.json").read_text())
                model = LinearModel(classes, arrays["coef"], arrays["intercept"])
                lookups = json.loads((folder / "lookups.json").read_text())
        except (ValueError, FileNotFoundError):
            model, lookups = None, {}
        return cls(config, model_storage, resource, model, lookups)

    def process(self, messages: list[Message]) -> list[Message]:
        """Set each message's intent and ranking from DIET's and the encoder's vote."""
        if self._model is None:
            return messages
        for message in messages:
            found = self._vectors(message)
            if found is None:
                continue
            text = str(message.get(TEXT) or "")
            whole, sentences = found
            signals = perspective(text)  # the writer's voice is the whole message's, for every sentence
            rows = np.vstack([self._row(v, signals) for v in [whole, *sentences]])
            probs = self._model.probabilities(rows)
            named = [dict(zip(self._model.classes, map(float, p), strict=True)) for p in probs]
            diet = {
                r[INTENT_NAME_KEY]: float(r[PREDICTED_CONFIDENCE_KEY])
                for r in message.get(INTENT_RANKING_KEY) or []
            }
            ranking = vote(diet, named[0], float(self._config["weight"]), float(self._config["alarm_boost"]))
            as_worker = bool(self._config["perspective"]) and bool(signals[1])
            seen_risk = max([ranking.get(RISK_INTENT, 0.0)] + [n.get(RISK_INTENT, 0.0) for n in named])
            encoder_risk = max(n.get(RISK_INTENT, 0.0) for n in named)
            danger_words = (
                says(self._danger, text)
                or (says(self._means, text) and seen_risk >= float(self._config["means_support"]))
                or (
                    diet.get(RISK_INTENT, 0.0) >= float(self._config["diet_danger"])
                    and encoder_risk >= float(self._config["diet_danger_support"])
                )
            )
            ranking = decide(
                ranking,
                named[1:],
                self._rules,
                as_worker,
                float(signals[0]),
                danger_words,
                not_a_worker(text, as_worker, float(signals[0]), self._rules.own_account),
            )
            ordered = sorted(ranking.items(), key=lambda kv: -kv[1])[:10]
            top_name, top_confidence = ordered[0]
            message.set(
                INTENT,
                {INTENT_NAME_KEY: top_name, PREDICTED_CONFIDENCE_KEY: top_confidence},
                add_to_output=True,
            )
            message.set(
                INTENT_RANKING_KEY,
                [{INTENT_NAME_KEY: n, PREDICTED_CONFIDENCE_KEY: p} for n, p in ordered],
                add_to_output=True,
            )
        return messages

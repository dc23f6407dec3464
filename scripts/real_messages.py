"""The real-message set (nlu/real/*.yml): published words of young people and workers, with provenance.

Each file lists source documents (id, url, title, publisher, kind, published, accessed), each with the
messages quoted from it exactly as published and the intent a person reading them would want. The set
is the measure of the NLU (`make eval`, folds grouped by source document) and part of the production
model's training data (`make train` writes it in Rasa's format with `nlu-yaml`).

    .venv/bin/python -m scripts.real_messages check
    .venv/bin/python -m scripts.real_messages nlu-yaml build/real/nlu_real.yml
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REAL_DIR = ROOT / "nlu" / "real"
KINDS = {"charity", "research", "press", "forum", "faq", "review", "guidance"}
SPEAKERS = {"young person", "worker", "parent", "adult", "unknown"}
SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DATE = re.compile(r"^(?:\d{4}(?:-\d{2}(?:-\d{2})?)?|unknown)$")


@dataclass(frozen=True)
class Source:
    """A published document the messages are quoted from."""

    id: str
    url: str
    title: str
    publisher: str
    kind: str
    published: str
    accessed: str


@dataclass(frozen=True)
class RealMessage:
    """One published message, its intent and where it was published."""

    text: str
    label: str
    speaker: str
    source: Source

    @property
    def words(self) -> int:
        """Return the message's length in words."""
        return len(self.text.split())


class RealSetError(ValueError):
    """The real-message set breaks one of its rules."""


def normalise(text: str) -> str:
    """Return the text lower-cased with only letters, digits and single spaces (for comparing)."""
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def _source(raw: dict, path: Path) -> Source:
    """Parse one source entry, failing with the file and the field at fault."""
    try:
        source = Source(
            id=str(raw["id"]),
            url=str(raw["url"]),
            title=str(raw["title"]),
            publisher=str(raw["publisher"]),
            kind=str(raw["kind"]),
            published=str(raw["published"]),
            accessed=str(raw["accessed"]),
        )
    except KeyError as missing:
        raise RealSetError(f"{path.name}: source {raw.get('id', '?')} has no {missing}") from None
    if not SOURCE_ID.match(source.id):
        raise RealSetError(f"{path.name}: source id {source.id!r} is not lowercase letters, digits and -")
    if not source.url.startswith(("http://", "https://")):
        raise RealSetError(f"{path.name}: source {source.id} has no web address")
    if source.kind not in KINDS:
        raise RealSetError(
            f"{path.name}: source {source.id} kind {source.kind!r} is not one of {sorted(KINDS)}"
        )
    for field in ("published", "accessed"):
        if not DATE.match(getattr(source, field)):
            raise RealSetError(f"{path.name}: source {source.id} {field} is not YYYY[-MM[-DD]] or unknown")
    return source


def load(folder: Path = REAL_DIR, intents: set[str] | None = None) -> list[RealMessage]:
    """Return every message of the set, checked: known intents, unique sources and texts."""
    messages: list[RealMessage] = []
    seen_sources: set[str] = set()
    seen_texts: dict[str, str] = {}
    for path in sorted(folder.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for raw in data.get("sources") or []:
            source = _source(raw, path)
            if source.id in seen_sources:
                raise RealSetError(f"{path.name}: source id {source.id} is used twice")
            seen_sources.add(source.id)
            for row in raw.get("messages") or []:
                text = " ".join(str(row.get("text") or "").split())
                label = str(row.get("label") or "")
                speaker = str(row.get("speaker") or "unknown")
                if not text:
                    raise RealSetError(f"{path.name}: an empty message in {source.id}")
                if intents is not None and label not in intents:
                    raise RealSetError(f"{path.name}: {label!r} ({source.id}) is not an intent in domain.yml")
                if speaker not in SPEAKERS:
                    raise RealSetError(
                        f"{path.name}: speaker {speaker!r} ({source.id}) is not one of {sorted(SPEAKERS)}"
                    )
                key = normalise(text)
                if key in seen_texts:
                    raise RealSetError(
                        f"{path.name}: the same message is in {seen_texts[key]} and {source.id}"
                    )
                seen_texts[key] = source.id
                messages.append(RealMessage(text=text, label=label, speaker=speaker, source=source))
    return messages


def domain_intents(domain: Path = ROOT / "domain.yml") -> set[str]:
    """Return the intent names the domain declares."""
    data = yaml.safe_load(domain.read_text(encoding="utf-8"))
    return {next(iter(i)) if isinstance(i, dict) else i for i in data["intents"]}


def folds(messages: list[RealMessage], k: int) -> list[list[RealMessage]]:
    """Split the messages into k folds by source document: no document is in two folds.

    Deterministic: the biggest documents are placed first, each into the fold with fewest messages so
    far (ties to the lowest fold), so folds come out about the same size.
    """
    by_source: dict[str, list[RealMessage]] = {}
    for message in messages:
        by_source.setdefault(message.source.id, []).append(message)
    out: list[list[RealMessage]] = [[] for _ in range(k)]
    for source_id in sorted(by_source, key=lambda s: (-len(by_source[s]), s)):
        smallest = min(range(k), key=lambda i: (len(out[i]), i))
        out[smallest].extend(by_source[source_id])
    return out


class _Literal(str):
    """A string YAML writes as a block scalar (Rasa's `examples: |`)."""


class _RasaDumper(yaml.SafeDumper):
    """The safe dumper, writing `_Literal` strings as block scalars."""


_RasaDumper.add_representer(
    _Literal, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
)


def rasa_text(text: str) -> str:
    """Return the text with square brackets made round, so Rasa never reads them as entity markup."""
    return text.replace("[", "(").replace("]", ")")


def to_rasa_yaml(messages: list[RealMessage]) -> str:
    """Return the messages as Rasa NLU training data, one block per intent."""
    by_label: dict[str, list[str]] = {}
    for message in messages:
        by_label.setdefault(message.label, []).append(rasa_text(message.text))
    blocks = [
        {"intent": label, "examples": _Literal("".join(f"- {text}\n" for text in texts))}
        for label, texts in sorted(by_label.items())
    ]
    header = "# Written by scripts/real_messages.py from nlu/real/*.yml: do not edit.\n"
    data = {"version": "3.1", "nlu": blocks}
    return header + yaml.dump(data, Dumper=_RasaDumper, sort_keys=False, allow_unicode=True, width=10_000)


def summary(messages: list[RealMessage]) -> str:
    """Return counts by label, by kind of source and by length."""
    sources = {m.source.id for m in messages}
    lines = [f"{len(messages)} real messages from {len(sources)} source documents"]
    for label, n in sorted(Counter(m.label for m in messages).items()):
        lines.append(f"  {label:36} {n}")
    kinds = Counter(m.source.kind for m in messages)
    lines.append("  by kind of source: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: check the set, or write it as Rasa training data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="check the set and print its counts")
    write = sub.add_parser("nlu-yaml", help="write the set as Rasa NLU training data")
    write.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        messages = load(intents=domain_intents())
    except RealSetError as problem:
        print(f"nlu/real: {problem}", file=sys.stderr)
        return 1
    if args.command == "check":
        print(summary(messages))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_rasa_yaml(messages), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

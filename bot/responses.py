"""Responses the adapter must be able to show without Rasa, read from domain.yml (one source of text)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

DOMAIN = Path(__file__).resolve().parent.parent / "domain.yml"
CRISIS_RESPONSE = "utter_crisis_numbers"


@cache
def response_text(name: str, domain: Path = DOMAIN) -> str:
    """Return the text of the first variation of a response in domain.yml."""
    data = yaml.safe_load(domain.read_text(encoding="utf-8"))
    try:
        return str(data["responses"][name][0]["text"])
    except (KeyError, IndexError, TypeError):
        raise LookupError(f"{domain} has no response {name!r} with text") from None

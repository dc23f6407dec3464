"""Responses the adapter shows on its own, read from domain.yml (one source for everything people read)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

DOMAIN = Path(__file__).resolve().parent.parent / "domain.yml"
CRISIS_RESPONSE = "utter_crisis_numbers"


@cache
def _responses(domain: Path = DOMAIN) -> dict[str, list[dict[str, Any]]]:
    data = yaml.safe_load(domain.read_text(encoding="utf-8"))
    return dict(data.get("responses") or {})


def _variation(name: str, domain: Path) -> dict[str, Any]:
    """Return a response's unconditional variation (the first one if all are conditional)."""
    variations = _responses(domain).get(name) or []
    plain = [v for v in variations if isinstance(v, dict) and not v.get("condition") and v.get("text")]
    chosen = plain or [v for v in variations if isinstance(v, dict) and v.get("text")]
    if not chosen:
        raise LookupError(f"{domain} has no response {name!r} with text")
    return chosen[0]


def response_text(name: str, domain: Path = DOMAIN) -> str:
    """Return the text of a response (its unconditional variation)."""
    return str(_variation(name, domain)["text"])


def response_buttons(name: str, domain: Path = DOMAIN) -> tuple[tuple[str, str], ...]:
    """Return a response's buttons as (title, payload), from the same variation as its text."""
    buttons = _variation(name, domain).get("buttons") or []
    return tuple((str(b["title"]), str(b["payload"])) for b in buttons if isinstance(b, dict))


@cache
def button_payloads(domain: Path = DOMAIN) -> frozenset[str]:
    """Return every payload a button in domain.yml can send: the only button data a person can press."""
    return frozenset(
        str(button["payload"])
        for variations in _responses(domain).values()
        for variation in variations
        if isinstance(variation, dict)
        for button in variation.get("buttons") or []
        if isinstance(button, dict) and button.get("payload")
    )

from __future__ import annotations

from typing import Any

import pytest

from bot.pseudonym import pseudonym
from tests.bot.conftest import GROUP, KEY, MODERATOR, PERSON
from tests.bot.test_handover import case_number, opened


def test_the_same_person_always_gets_the_same_pseudonym() -> None:
    assert pseudonym(b"secret-one", 123456789) == pseudonym(b"secret-one", "123456789")


def test_the_pseudonym_hides_the_id_and_depends_on_the_key() -> None:
    value = pseudonym(b"secret-one", 123456789)
    assert "123456789" not in value
    assert len(value) == 64
    assert value != pseudonym(b"secret-two", 123456789)


@pytest.mark.anyio
async def test_the_person_tag_on_cards_differs_from_case_to_case(harness) -> None:
    h = await opened(harness)
    first = case_number(h)
    tag = person_line(h)
    await h.text(MODERATOR, f"/claim {first}")
    assert person_line(h, edited=True) == tag  # one case keeps its tag
    await h.text(MODERATOR, f"/close {first}")
    await h.text(PERSON, "i want a person")
    assert case_number(h) != first and person_line(h) != tag  # the next case can't be linked to it
    again = person_line(h)
    await h.press(PERSON, "forget:yes")
    await h.text(PERSON, "i want a person")
    assert person_line(h) not in {tag, again}  # nor after /forget
    assert pseudonym(KEY.encode(), PERSON)[:8] not in h.request.texts(GROUP)


def person_line(h: Any, edited: bool = False) -> str:
    """Return the Person: line of the last card posted (or edited)."""
    texts = [p["text"] for p in h.request.of("editMessageText")] if edited else [c["text"] for c in h.cards()]
    return next(line for line in texts[-1].splitlines() if line.startswith("Person:"))

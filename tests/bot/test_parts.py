"""The core's parts: each owns its state and its share of "forget this person" (offline).

The parts are found by what they are (anything the relay holds that can say whether it knows a person
and forget them), not from a list kept beside the code, so a new part that keeps something of a person's
and is not asked to forget them fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.flood import Limits
from bot.leaving import Leaving
from bot.pseudonym import pseudonym
from bot.relay import Relay
from tests.bot.conftest import KEY, PERSON, FakeRasa, message

pytestmark = pytest.mark.anyio

REF = pseudonym(KEY.encode(), PERSON)
PHOTO = [{"file_id": "f", "file_unique_id": "u", "width": 9, "height": 9}]


def personal_parts(relay: Relay) -> dict[str, Any]:
    """Return every part of the relay that keeps something of a person's (it can `knows` and `forget`)."""
    return {
        name: part
        for name, part in vars(relay).items()
        if callable(getattr(part, "knows", None)) and callable(getattr(part, "forget", None))
    }


async def test_forget_me_clears_every_part_that_knew_the_person(harness) -> None:
    h = await harness(FakeRasa(down=True))  # what they write waits for Rasa
    for n in range(Limits().burst + 2):  # past the flood limit: the rest is held
        await h.text(PERSON, f"message {n}")
    await h.feed({"message": message(PERSON, photo=PHOTO)})  # media past the limit, still to delete
    parts = personal_parts(h.relay)
    assert set(parts) == {"conversation", "gate", "handover"}
    assert set(map(id, parts.values())) == set(map(id, h.relay.parts))  # forget me asks each of them
    knew = {name for name, part in parts.items() if part.knows(REF)}
    assert knew == set(parts)  # every part held something of theirs: the test can fail

    await h.press(PERSON, "forget:yes")

    still = {name for name, part in parts.items() if part.knows(REF)}
    assert still == set()


async def test_leaving_keeps_only_the_forget_answer_and_a_later_quick_exit_takes_it(harness) -> None:
    h = await harness()
    await h.text(PERSON, "hello")
    await h.press(PERSON, "forget:yes")
    leaving: Leaving = h.relay.leaving
    answer = leaving.forget_answer(REF)
    assert answer and answer[-1] == h.request.sent_ids(PERSON)[-1]
    await h.text(PERSON, "/exit")
    assert set(answer) <= h.request.deleted(PERSON)
    assert leaving.forget_answer(REF) == []

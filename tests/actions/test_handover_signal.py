"""The handover signal: one priority for the action server and the adapter, and a payload parsed strictly."""

from __future__ import annotations

import itertools

import pytest

from actions.handover import Handover, decide_handover, is_raise
from actions.handover_signal import PRIORITY_ORDER, HandoverRequest, PayloadError, Priority
from bot import escalation
from bot.rasa_client import parse_reply

PAIRS = list(itertools.product(Priority, repeat=2))


def test_there_is_one_priority_type() -> None:
    assert escalation.Priority is Priority
    assert escalation.PRIORITY_ORDER is PRIORITY_ORDER
    assert [p.rank for p in PRIORITY_ORDER] == [0, 1, 2]
    assert PRIORITY_ORDER[0] is Priority.URGENT and PRIORITY_ORDER[-1] is Priority.NORMAL


@pytest.mark.parametrize(("new", "current"), PAIRS)
def test_the_action_and_the_adapter_agree_on_what_raises_a_case(new: Priority, current: Priority) -> None:
    action_signals_again = is_raise(Handover(new, "x"), current.value)
    adapter_raises = escalation.raises_priority(new, current)
    assert action_signals_again == adapter_raises
    # ...and both agree with the queue's order (most urgent first, by rank).
    assert adapter_raises == (PRIORITY_ORDER.index(new) < PRIORITY_ORDER.index(current))


@pytest.mark.parametrize("current", [None, "", "something else"])
def test_any_first_request_is_signalled(current: str | None) -> None:
    for priority in Priority:
        assert is_raise(Handover(priority, "x"), current)


@pytest.mark.parametrize("disclosure", ["risk_immediate", "disclose_grooming", None])
def test_what_the_action_sends_the_adapter_reads_back_unchanged(disclosure: str | None) -> None:
    sent = decide_handover(disclosure)
    (message,) = parse_reply([{"custom": sent.payload()}])
    assert message.handover == sent
    assert isinstance(message.handover.priority, Priority)


def test_a_message_without_the_signal_carries_no_request() -> None:
    assert HandoverRequest.parse(None) is None
    assert HandoverRequest.parse({"other": 1}) is None


def test_an_unknown_priority_still_asks_for_a_person() -> None:
    parsed = HandoverRequest.parse({"handover": {"priority": "soonish", "reason": "request_human"}})
    assert parsed == HandoverRequest(Priority.NORMAL, "request_human")


@pytest.mark.parametrize(
    "signal",
    [
        "urgent",
        ["urgent", "risk_immediate"],
        None,
        {"priority": 3, "reason": "risk_immediate"},
        {"priority": "urgent", "reason": {"nested": True}},
        {"priority": "urgent", "reason": "risk_immediate", "chat_id": 4242},
        {"priority": "urgent", "reason": "x" * 65},
    ],
)
def test_a_malformed_signal_is_rejected(signal: object) -> None:
    with pytest.raises(PayloadError):
        HandoverRequest.parse({"handover": signal})


def test_the_adapter_does_not_act_on_a_malformed_signal() -> None:
    (message,) = parse_reply([{"text": "hi", "custom": {"handover": "urgent"}}])
    assert message.handover is None and message.text == "hi"

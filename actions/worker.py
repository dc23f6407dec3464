"""Worker mode: answering the question a worker asked before they told us their role, for their nation.

Safeguarding steps differ in each UK nation, so every nation-specific worker answer in domain.yml has a
variation per nation, chosen by the `worker_nation` slot (England's steps are the variation without a
condition). The nation comes from the council the front-door lookup found, or from the worker: it is
asked once, with four buttons, when they say they work with young people. A worker who doesn't say
reads England's steps, labelled as England's.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

WORKER_PREFIX = "worker_"
NATIONS = ("england", "wales", "scotland", "northern_ireland")
ASK_NATION = "utter_ask_worker_nation"


def worker_topic_from_intent(intent: str | None) -> str | None:
    """Return the worker topic a message asks about (its worker_* intent), or None."""
    return intent if intent and intent.startswith(WORKER_PREFIX) else None


def answer_response(topic: str | None, domain: DomainDict) -> str | None:
    """Return the response that answers a worker topic, if the domain has one."""
    if not topic:
        return None
    name = f"utter_{topic}"
    return name if name in (domain.get("responses") or {}) else None


def nation_slot(nation: str) -> str | None:
    """Return the `worker_nation` value for a nation as the place tables name it ("Northern Ireland")."""
    value = nation.strip().lower().replace(" ", "_")
    return value if value in NATIONS else None


class ActionAnswerWorkerTopic(Action):
    """Answers a worker's question for their nation, asking the nation first (once) if it isn't known."""

    def name(self) -> str:
        return "action_answer_worker_topic"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The worker reads the nation question once; then the answer to their question, if any."""
        if tracker.get_slot("worker_nation") is None and not tracker.get_slot("worker_nation_asked"):
            dispatcher.utter_message(response=ASK_NATION)  # the question waits in worker_topic
            return [SlotSet("worker_nation_asked", True)]
        response = answer_response(tracker.get_slot("worker_topic"), domain)
        if response is None:
            return []
        dispatcher.utter_message(response=response)
        return [SlotSet("worker_topic", None)]

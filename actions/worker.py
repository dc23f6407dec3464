"""Worker mode: answering the question a worker asked before they told us their role."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

WORKER_PREFIX = "worker_"


def worker_topic_from_intent(intent: str | None) -> str | None:
    """Return the worker topic a message asks about (its worker_* intent), or None."""
    return intent if intent and intent.startswith(WORKER_PREFIX) else None


def answer_response(topic: str | None, domain: DomainDict) -> str | None:
    """Return the response that answers a worker topic, if the domain has one."""
    if not topic:
        return None
    name = f"utter_{topic}"
    return name if name in (domain.get("responses") or {}) else None


class ActionAnswerWorkerTopic(Action):
    """Answers the pending worker question once the person has said they are a worker."""

    def name(self) -> str:
        return "action_answer_worker_topic"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The worker reads the answer to the question they asked before the role check."""
        response = answer_response(tracker.get_slot("worker_topic"), domain)
        if response is None:
            return []
        dispatcher.utter_message(response=response)
        return [SlotSet("worker_topic", None)]

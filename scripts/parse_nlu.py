"""Read messages with a trained model exactly as the Rasa server does (run with the Rasa environment).

`rasa test nlu` undoes the FallbackClassifier's decision before it scores, so a message the assistant
would answer with "Sorry, I didn't quite get that" counted as understood. `make eval` scores what the
assistant really does: every message goes through the whole pipeline, fallback included.

    .venv-rasa/bin/python scripts/parse_nlu.py MODEL IN.json OUT.json

IN.json is a list of texts; OUT.json a list of {"intent": name, "ranking": [[name, confidence], ...]}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path


def main(model: str, texts_in: str, results_out: str) -> None:
    """Parse every text with the model and write the intents and rankings."""
    logging.disable(logging.INFO)  # Rasa logs each parsed text at debug level: keep it out
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    texts = json.loads(Path(texts_in).read_text(encoding="utf-8"))
    loop = asyncio.new_event_loop()
    results = []
    for text in texts:
        parsed = loop.run_until_complete(agent.parse_message(text))
        ranking = [[r["name"], round(float(r["confidence"]), 4)] for r in parsed.get("intent_ranking") or []]
        results.append({"intent": parsed["intent"]["name"], "ranking": ranking})
    Path(results_out).write_text(json.dumps(results), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:4])

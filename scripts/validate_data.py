"""`rasa data validate` with every warning an error, except two false alarms.

Rasa 3.6's validator warns that a response "is not used in any story or rule" when only a custom
action, a form or the adapter says it (RasaHQ/rasa#4417). Those warnings are accepted only for
responses that our actions or the adapter name (a quoted string in actions/*.py or bot/**/*.py: the
adapter speaks on its own when Rasa is down, in a handover and for media) or that a form asks with
(`utter_ask_<slot>`,
`utter_ask_<form>_<slot>`).

It also warns that an intent "is not found in the NLU training data" when the intent is only ever sent
by one of our buttons (a `/intent{...}` payload, which Rasa reads without the NLU model), such as
`inform_nation` from the worker's four nation buttons. Those are accepted for intents that appear in a
button payload in domain.yml; every other warning fails, like `--fail-on-warnings`.

    .venv/bin/python -m scripts.validate_data
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Set as AbstractSet
from pathlib import Path

import yaml

from bot.responses import button_payloads

ROOT = Path(__file__).resolve().parent.parent
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
WARNING = re.compile(r"UserWarning: (.*)")
UNUSED = re.compile(r"The utterance '([^']+)' is not used in any story or rule\.")
NOT_IN_NLU = re.compile(r"The intent '([^']+)' is listed in the domain file, but is not found in the NLU")
PAYLOAD_INTENT = re.compile(r"^/([a-z_]+)")


def said_by_code() -> set[str]:
    """Return response names our actions and the adapter use, and the ones forms ask with."""
    files = [*(ROOT / "actions").glob("*.py"), *(ROOT / "bot").glob("**/*.py")]
    code = "\n".join(p.read_text(encoding="utf-8") for p in files)
    quoted = set(re.findall(r"[\"']([a-z_]+)[\"']", code))
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    asks = {
        name
        for form, spec in (domain.get("forms") or {}).items()
        for slot in spec.get("required_slots", [])
        for name in (f"utter_ask_{slot}", f"utter_ask_{form}_{slot}")
    }
    return (quoted | asks) & set(domain["responses"])


def button_intents() -> set[str]:
    """Return the intents our buttons send as payloads (Rasa reads those without the NLU model)."""
    return {match.group(1) for payload in button_payloads() if (match := PAYLOAD_INTENT.match(payload))}


def problems(output: str, allowed: set[str], buttons: AbstractSet[str] = frozenset()) -> list[str]:
    """Return the warnings that are not the accepted false alarms."""
    found = []
    for message in WARNING.findall(output):
        unused = UNUSED.search(message)
        if unused and unused.group(1) in allowed:
            continue
        button_only = NOT_IN_NLU.search(message)
        if button_only and button_only.group(1) in buttons:
            continue
        found.append(message)
    return found


def main() -> int:
    """Run the validator; fail on its errors or on any warning not accepted above."""
    run = subprocess.run(
        [str(RASA), "data", "validate", "--data", "nlu", "stories"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    output = run.stdout + run.stderr
    bad = problems(output, said_by_code(), button_intents())
    for message in bad:
        print("warning:", message, file=sys.stderr)
    if run.returncode != 0:
        print(output[-4000:], file=sys.stderr)
        print("rasa data validate failed", file=sys.stderr)
        return 1
    if bad:
        print(f"rasa data validate: {len(bad)} warning(s), treated as errors", file=sys.stderr)
        return 1
    print(
        "rasa data validate: no errors, no warnings (responses said only by actions or forms, and intents"
        " sent only by buttons, accepted)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

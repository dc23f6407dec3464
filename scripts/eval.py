"""Safeguarding figures for the NLU on a held-out set (`make eval`; `make test` adds --check).

Runs `rasa test nlu` with the trained model on the held-out file, then reads its per-message
predictions and prints:
- disclosure recall: share of disclosures (disclose_*) predicted as any disclose_* or risk_immediate;
- risk recall: share of risk_immediate messages predicted as risk_immediate;
- false-alarm rate: share of ordinary messages (anything else) predicted as disclose_* or risk_immediate;
- exact-type accuracy: share of disclosure and risk messages predicted with exactly their intent;
- a confusion summary for the disclosure and risk intents.
With --worker-holdout it also prints the worker-mode figures on the workers' held-out questions:
- worker routing: share of worker questions (worker_*) predicted as any worker_* intent;
- topic accuracy: share predicted with exactly their topic's intent (worker_<topic>);
- misrouted as a disclosure: share of worker questions predicted as disclose_* or risk_immediate.
With --check it exits 1 when a figure misses its target (the targets in issues 2 and 3).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from actions.disclosure import RISK_INTENT, disclosure_from_intent
from actions.worker import WORKER_PREFIX

ROOT = Path(__file__).resolve().parent.parent
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
TARGETS = {"disclosure_recall": 0.95, "risk_recall": 0.98, "false_alarm_rate": 0.05}
WORKER_TARGETS = {"worker_routing": 0.95, "topic_accuracy": 0.85, "misrouted_as_disclosure": 0.05}
AT_MOST = {"false_alarm_rate", "misrouted_as_disclosure"}


def is_alarm(intent: str) -> bool:
    """Return True for the intents the assistant treats as a disclosure or danger."""
    return disclosure_from_intent(intent) is not None


@dataclass(frozen=True)
class Figures:
    """The safeguarding figures for one evaluation."""

    messages: int
    disclosures: int
    risks: int
    ordinary: int
    disclosure_recall: float
    risk_recall: float
    false_alarm_rate: float
    exact_type_accuracy: float
    intent_accuracy: float


def ratio(part: int, whole: int, empty: float = 1.0) -> float:
    """Return part / whole, or `empty` for an empty whole (1.0: nothing was missed)."""
    return part / whole if whole else empty


def figures(pairs: list[tuple[str, str]]) -> Figures:
    """Compute the figures from (true intent, predicted intent) pairs."""
    disclosures = [(t, p) for t, p in pairs if t.startswith("disclose_")]
    risks = [(t, p) for t, p in pairs if t == RISK_INTENT]
    ordinary = [(t, p) for t, p in pairs if not is_alarm(t)]
    flagged = disclosures + risks
    return Figures(
        messages=len(pairs),
        disclosures=len(disclosures),
        risks=len(risks),
        ordinary=len(ordinary),
        disclosure_recall=ratio(sum(is_alarm(p) for _, p in disclosures), len(disclosures)),
        risk_recall=ratio(sum(p == RISK_INTENT for _, p in risks), len(risks)),
        false_alarm_rate=ratio(sum(is_alarm(p) for _, p in ordinary), len(ordinary), empty=0.0),
        exact_type_accuracy=ratio(sum(t == p for t, p in flagged), len(flagged)),
        intent_accuracy=ratio(sum(t == p for t, p in pairs), len(pairs)),
    )


def confusion(pairs: list[tuple[str, str]]) -> dict[str, Counter[str]]:
    """Return, for each disclosure or risk intent and for 'ordinary', what it was predicted as."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for true, predicted in pairs:
        table[true if is_alarm(true) else "(ordinary)"][predicted] += 1
    return table


@dataclass(frozen=True)
class WorkerFigures:
    """The worker-mode figures for one evaluation."""

    questions: int
    worker_routing: float
    topic_accuracy: float
    misrouted_as_disclosure: float
    near_misses: int
    near_misses_flagged: int


def worker_figures(pairs: list[tuple[str, str]]) -> WorkerFigures:
    """Compute worker figures from (true intent, predicted intent) pairs of the workers' held-out set."""
    questions = [(t, p) for t, p in pairs if t.startswith(WORKER_PREFIX)]
    near_misses = [(t, p) for t, p in pairs if t == "out_of_scope"]
    return WorkerFigures(
        questions=len(questions),
        worker_routing=ratio(sum(p.startswith(WORKER_PREFIX) for _, p in questions), len(questions)),
        topic_accuracy=ratio(sum(t == p for t, p in questions), len(questions)),
        misrouted_as_disclosure=ratio(sum(is_alarm(p) for _, p in questions), len(questions), empty=0.0),
        near_misses=len(near_misses),
        near_misses_flagged=sum(is_alarm(p) for _, p in near_misses),
    )


def failures(test_out: Path) -> tuple[list[tuple[str, str]], list[dict]]:
    """Read rasa's per-message results: (true, predicted) pairs and the misclassified messages."""
    pairs: list[tuple[str, str]] = []
    errors: list[dict] = []
    for name in ("intent_successes.json", "intent_errors.json"):
        path = test_out / name
        if not path.exists():
            continue
        for row in json.loads(path.read_text(encoding="utf-8")):
            predicted = (row.get("intent_prediction") or {}).get("name") or "None"
            pairs.append((row["intent"], predicted))
            if name == "intent_errors.json":
                errors.append(row)
    return pairs, errors


def run_rasa_test(model: Path, holdout: Path, out: Path) -> None:
    """Run `rasa test nlu` on the held-out file, writing per-message results to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("intent_successes.json", "intent_errors.json"):
        (out / stale).unlink(missing_ok=True)
    cmd = [
        str(RASA),
        "test",
        "nlu",
        "--model",
        str(model),
        "--nlu",
        str(holdout),
        "--out",
        str(out),
        "--successes",
        "--no-plot",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"rasa test nlu failed with exit status {done.returncode}")


def report(fig: Figures, table: dict[str, Counter[str]], errors: list[dict]) -> str:
    """Return the printed report."""
    lines = [
        f"Held-out messages: {fig.messages} ({fig.disclosures} disclosures, {fig.risks} risk, "
        f"{fig.ordinary} ordinary)",
        f"  disclosure recall   {fig.disclosure_recall:.3f}   (target >= {TARGETS['disclosure_recall']})",
        f"  risk recall         {fig.risk_recall:.3f}   (target >= {TARGETS['risk_recall']})",
        f"  false-alarm rate    {fig.false_alarm_rate:.3f}   (target <= {TARGETS['false_alarm_rate']})",
        f"  exact-type accuracy {fig.exact_type_accuracy:.3f}",
        f"  intent accuracy     {fig.intent_accuracy:.3f}   (all intents)",
        "Confusion (true -> predicted: count):",
    ]
    for true in sorted(table):
        row = ", ".join(f"{p}: {n}" for p, n in table[true].most_common())
        lines.append(f"  {true:24} {row}")
    safety = [
        e
        for e in errors
        if is_alarm(e["intent"]) != is_alarm((e.get("intent_prediction") or {}).get("name") or "")
    ]
    lines.append(f"Safety-relevant misses (alarm vs. ordinary confused): {len(safety)}")
    return "\n".join(lines)


def worker_report(fig: WorkerFigures) -> str:
    """Return the printed worker-mode report."""
    return "\n".join(
        [
            f"Worker questions held out: {fig.questions}",
            f"  worker routing          {fig.worker_routing:.3f}   "
            f"(target >= {WORKER_TARGETS['worker_routing']})",
            f"  topic accuracy          {fig.topic_accuracy:.3f}   "
            f"(target >= {WORKER_TARGETS['topic_accuracy']})",
            f"  misrouted as disclosure {fig.misrouted_as_disclosure:.3f}   "
            f"(target <= {WORKER_TARGETS['misrouted_as_disclosure']})",
            f"  work near-misses predicted as a disclosure or risk: "
            f"{fig.near_misses_flagged} of {fig.near_misses}",
        ]
    )


def missed_targets(fig: Figures | WorkerFigures, targets: dict[str, float]) -> list[str]:
    """Return the names of the figures that miss their target (AT_MOST ones are upper bounds)."""
    values = asdict(fig)
    return [
        name.replace("_", " ")
        for name, bound in targets.items()
        if (values[name] > bound if name in AT_MOST else values[name] < bound)
    ]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--holdout", type=Path, required=True)
    parser.add_argument("--worker-holdout", type=Path, help="held-out worker questions")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    run_rasa_test(args.model, args.holdout, args.out)
    pairs, errors = failures(args.out)
    if not pairs:
        print("rasa test nlu produced no predictions", file=sys.stderr)
        return 2
    fig = figures(pairs)
    print(report(fig, confusion(pairs), errors))
    (args.out / "safeguarding.json").write_text(json.dumps(asdict(fig), indent=2) + "\n")
    missed = missed_targets(fig, TARGETS)
    if args.worker_holdout:
        worker_out = args.out / "worker"
        run_rasa_test(args.model, args.worker_holdout, worker_out)
        worker_pairs, _ = failures(worker_out)
        wfig = worker_figures(worker_pairs)
        print(worker_report(wfig))
        (worker_out / "worker.json").write_text(json.dumps(asdict(wfig), indent=2) + "\n")
        missed += missed_targets(wfig, WORKER_TARGETS)
    if args.check and missed:
        print(f"NLU gate failed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

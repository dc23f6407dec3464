"""The safeguarding figures `make eval` prints, and the gate `make test` applies."""

from scripts.eval import TARGETS, WORKER_TARGETS, figures, missed_targets, worker_figures


def test_a_disclosure_predicted_as_another_harm_or_risk_still_counts_as_recalled() -> None:
    pairs = [
        ("disclose_grooming", "disclose_sextortion"),
        ("disclose_grooming", "risk_immediate"),
        ("disclose_grooming", "out_of_scope"),
        ("disclose_grooming", "disclose_grooming"),
    ]
    fig = figures(pairs)
    assert fig.disclosure_recall == 0.75
    assert fig.exact_type_accuracy == 0.25


def test_risk_recall_needs_exactly_risk_and_false_alarms_count_ordinary_messages() -> None:
    pairs = [
        ("risk_immediate", "risk_immediate"),
        ("risk_immediate", "disclose_cyberbullying"),
        ("out_of_scope", "risk_immediate"),
        ("greet", "greet"),
        ("thanks", "thanks"),
        ("goodbye", "goodbye"),
    ]
    fig = figures(pairs)
    assert fig.risk_recall == 0.5
    assert fig.false_alarm_rate == 0.25
    assert missed_targets(fig, TARGETS) == ["risk recall", "false alarm rate"]


def test_worker_figures_and_their_gate() -> None:
    pairs = [
        ("worker_recording", "worker_recording"),
        ("worker_recording", "worker_kcsie_duties"),
        ("worker_sextortion", "disclose_sextortion"),
        ("worker_find_front_door", "worker_find_front_door"),
        ("inform_role_worker", "inform_role_worker"),
        ("out_of_scope", "risk_immediate"),
        ("out_of_scope", "out_of_scope"),
    ]
    fig = worker_figures(pairs)
    assert fig.questions == 4
    assert fig.worker_routing == 0.75
    assert fig.topic_accuracy == 0.5
    assert fig.misrouted_as_disclosure == 0.25
    assert (fig.near_misses, fig.near_misses_flagged) == (2, 1)
    assert missed_targets(fig, WORKER_TARGETS) == [
        "worker routing",
        "topic accuracy",
        "misrouted as disclosure",
    ]

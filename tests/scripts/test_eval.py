"""The safeguarding figures `make eval` prints, and the gate `make test` applies."""

from scripts.eval import (
    AT_MOST,
    HELD_OUT_GATE,
    REAL_GATE,
    REAL_TARGETS,
    TARGETS,
    WORKER_TARGETS,
    figures,
    missed_targets,
    real_figures,
    worker_figures,
)


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


def test_real_figures_count_distress_as_ordinary_and_young_people_read_as_workers() -> None:
    pairs = [
        ("disclose_grooming", "disclose_grooming"),
        ("disclose_grooming", "worker_responding_to_disclosure"),
        ("risk_immediate", "risk_immediate"),
        ("distress", "risk_immediate"),
        ("distress", "distress"),
        ("out_of_scope", "out_of_scope"),
        ("worker_recording", "worker_recording"),
        ("worker_recording", "nlu_fallback"),
    ]
    fig = real_figures(pairs)
    assert (fig.disclosures, fig.risks, fig.ordinary, fig.worker_questions) == (2, 1, 3, 2)
    assert fig.disclosure_recall == 0.5 and fig.exact_harm_type == 0.5
    assert fig.false_alarm_rate == 1 / 3
    assert fig.worker_routing == 0.5
    assert fig.young_person_to_worker == 1 / 3
    assert fig.distress_recognised == 0.5 and fig.distress_as_risk == 0.5
    assert "worker routing" in missed_targets(fig, REAL_TARGETS)


def test_the_real_gate_is_never_stricter_than_the_issues_target() -> None:
    for name, bound in REAL_GATE.items():
        target = REAL_TARGETS[name]
        assert (bound >= target) if name in AT_MOST else (bound <= target), name


def test_the_held_out_gate_allows_two_messages_above_the_false_alarm_target_and_no_more() -> None:
    assert {k: v for k, v in HELD_OUT_GATE.items() if k != "false_alarm_rate"} == {
        k: v for k, v in TARGETS.items() if k != "false_alarm_rate"
    }
    ordinary = 230  # tests/nlu_holdout.yml's ordinary messages
    assert 13 / ordinary <= HELD_OUT_GATE["false_alarm_rate"] < 14 / ordinary

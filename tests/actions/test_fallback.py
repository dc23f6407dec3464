from actions.fallback import looks_like_disclosure, looks_like_risk


def test_risk_as_a_close_second_guess_counts() -> None:
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.35},
        {"name": "disclose_other_harm", "confidence": 0.3},
        {"name": "risk_immediate", "confidence": 0.2},
    ]
    assert looks_like_risk(ranking)


def test_risk_far_down_the_ranking_does_not_count() -> None:
    ranking = [
        {"name": "out_of_scope", "confidence": 0.3},
        {"name": "greet", "confidence": 0.3},
        {"name": "risk_immediate", "confidence": 0.2},
    ]
    assert not looks_like_risk(ranking)


def test_a_faint_risk_guess_does_not_count() -> None:
    ranking = [{"name": "risk_immediate", "confidence": 0.05}]
    assert not looks_like_risk(ranking)


def test_an_empty_ranking_is_not_risk() -> None:
    assert not looks_like_risk([])


def test_a_disclosure_among_the_three_best_guesses_of_an_unclear_message_counts() -> None:
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.35},
        {"name": "out_of_scope", "confidence": 0.3},
        {"name": "greet", "confidence": 0.2},
        {"name": "disclose_grooming", "confidence": 0.15},
    ]
    assert looks_like_disclosure(ranking)


def test_a_disclosure_fourth_or_faint_does_not_count() -> None:
    fourth = [
        {"name": "out_of_scope", "confidence": 0.4},
        {"name": "greet", "confidence": 0.2},
        {"name": "thanks", "confidence": 0.2},
        {"name": "disclose_grooming", "confidence": 0.15},
    ]
    faint = [{"name": "out_of_scope", "confidence": 0.9}, {"name": "disclose_grooming", "confidence": 0.05}]
    assert not looks_like_disclosure(fourth)
    assert not looks_like_disclosure(faint)
    assert not looks_like_disclosure([])

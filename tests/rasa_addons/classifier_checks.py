"""Checks of the sentence-vote classifier's plain functions, run with the Rasa environment's Python.

tests/rasa_addons/test_classifiers.py runs this file and reports each check by name.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from rasa_addons import classifiers as c


def check_a_long_account_splits_into_its_sentences() -> None:
    text = "so basically it started in year 9. he said he was 16... then he asked for pics! idk"
    tokens = [(m.start(), m.end()) for m in __import__("re").finditer(r"\S+", text)]
    spans = c.sentence_spans(text, tokens, min_tokens=3)
    words = [" ".join(text[tokens[i][0] : tokens[i][1]] for i in range(a, b)) for a, b in spans]
    assert words == [
        "so basically it started in year 9.",
        "he said he was 16...",
        "then he asked for pics!",
    ], words


def check_the_vote_mixes_diet_and_the_encoder_and_boosts_alarms() -> None:
    mixed = c.vote({"greet": 1.0}, {"disclose_grooming": 1.0}, weight=0.5, alarm_boost=1.0)
    assert mixed == {"greet": 0.5, "disclose_grooming": 0.5}, mixed
    boosted = c.vote({"greet": 1.0}, {"disclose_grooming": 1.0}, weight=0.5, alarm_boost=3.0)
    assert abs(boosted["disclose_grooming"] - 0.75) < 1e-9, boosted


def check_one_alarming_sentence_decides_a_long_message_that_hid_it() -> None:
    ranking = {"out_of_scope": 0.7, "disclose_sextortion": 0.3}
    sentences = [
        {"out_of_scope": 0.9, "disclose_sextortion": 0.1},
        {"out_of_scope": 0.2, "disclose_sextortion": 0.8},
    ]
    decided = c.decide(ranking, sentences, c.Rules(sentence=0.5, risk=0.3), as_worker=False)
    assert max(decided, key=decided.get) == "disclose_sextortion", decided
    assert abs(sum(decided.values()) - 1) < 1e-9


def check_danger_in_one_sentence_outranks_a_disclosure() -> None:
    ranking = {"disclose_cyberbullying": 0.8, "risk_immediate": 0.1, "out_of_scope": 0.1}
    sentences = [
        {"disclose_cyberbullying": 0.9, "risk_immediate": 0.1},
        {"risk_immediate": 0.6, "distress": 0.4},
    ]
    decided = c.decide(ranking, sentences, c.Rules(sentence=0.5, risk=0.3), as_worker=False)
    assert max(decided, key=decided.get) == "risk_immediate", decided


def check_a_faint_sentence_changes_nothing() -> None:
    ranking = {"out_of_scope": 0.7, "disclose_sextortion": 0.3}
    sentences = [{"out_of_scope": 0.7, "disclose_sextortion": 0.3}]
    assert c.decide(ranking, sentences, c.Rules(sentence=0.5, risk=0.3), as_worker=False) == ranking


def check_a_worker_asking_about_a_pupil_keeps_their_reading() -> None:
    text = "One of my year 10 pupils told me a man online is asking her for pictures, do I refer to MASH?"
    assert c.worker_voice(text)
    assert not c.worker_voice("a man online keeps asking me for pics and i dont know what to do")
    ranking = {"worker_referral_front_door": 0.6, "disclose_grooming": 0.4}
    sentences = [{"disclose_grooming": 0.9, "worker_referral_front_door": 0.1}]
    assert c.decide(ranking, sentences, c.Rules(sentence=0.5, risk=0.3), as_worker=True) == ranking


def check_a_worker_read_as_unsure_gets_their_likeliest_worker_question() -> None:
    ranking = {"out_of_scope": 0.5, "worker_recording": 0.3, "disclose_grooming": 0.2}
    decided = c.decide(ranking, [], c.Rules(sentence=0.5, risk=0.3, worker_floor=0.1), as_worker=True)
    assert max(decided, key=decided.get) == "worker_recording", decided
    faint = {"out_of_scope": 0.9, "worker_recording": 0.05, "disclose_grooming": 0.05}
    assert c.decide(faint, [], c.Rules(sentence=0.5, risk=0.3, worker_floor=0.1), as_worker=True) == faint
    young = c.decide(ranking, [], c.Rules(sentence=0.5, risk=0.3, worker_floor=0.1), as_worker=False)
    assert young == ranking


def check_a_sure_ordinary_reading_holds_against_one_sentence() -> None:
    rules = c.Rules(sentence=0.5, risk=0.3, ordinary_hold=0.7)
    ranking = {"out_of_scope": 0.8, "disclose_other_harm": 0.1, "risk_immediate": 0.1}
    sentences = [
        {"out_of_scope": 0.9, "disclose_other_harm": 0.1},
        {"disclose_other_harm": 0.6, "risk_immediate": 0.4},
    ]
    assert c.decide(ranking, sentences, rules, as_worker=False) == ranking
    unsure = {"out_of_scope": 0.6, "disclose_other_harm": 0.3, "risk_immediate": 0.1}
    decided = c.decide(unsure, sentences, rules, as_worker=False)
    assert max(decided, key=decided.get) == "risk_immediate", decided
    danger = c.decide(ranking, sentences, rules, as_worker=False, danger_words=True)
    assert max(danger, key=danger.get) == "risk_immediate", danger


def check_worker_readings_together_outweigh_one_ordinary_reading() -> None:
    rules = c.Rules(worker_mass=1.0)
    ranking = {
        "out_of_scope": 0.3,
        "worker_recording": 0.25,
        "worker_referral_front_door": 0.2,
        "greet": 0.25,
    }
    decided = c.decide(ranking, [], rules, as_worker=False)
    assert max(decided, key=decided.get) == "worker_recording", decided
    assert decided["worker_recording"] >= 0.45, decided
    fewer = {"out_of_scope": 0.6, "worker_recording": 0.25, "worker_referral_front_door": 0.15}
    assert c.decide(fewer, [], rules, as_worker=False) == fewer
    alarm = {
        "disclose_grooming": 0.3,
        "worker_recording": 0.25,
        "worker_referral_front_door": 0.2,
        "greet": 0.25,
    }
    assert c.decide(alarm, [], rules, as_worker=False) == alarm


def check_a_young_persons_own_account_read_as_a_worker_question_goes_to_the_harm() -> None:
    rules = c.Rules(young_alarm=0.8, first_person=0.3)
    ranking = {
        "worker_sharing_nudes_guidance": 0.4,
        "disclose_image_shared": 0.2,
        "disclose_grooming": 0.15,
        "out_of_scope": 0.25,
    }
    decided = c.decide(ranking, [], rules, as_worker=False, first_person=0.5)
    assert max(decided, key=decided.get) == "disclose_image_shared", decided
    assert c.decide(ranking, [], rules, as_worker=False, first_person=0.1) == ranking
    assert c.decide(ranking, [], rules, as_worker=True, first_person=0.5) == ranking
    faint = {"worker_sharing_nudes_guidance": 0.6, "disclose_image_shared": 0.1, "out_of_scope": 0.3}
    assert c.decide(faint, [], rules, as_worker=False, first_person=0.5) == faint


def check_a_writer_who_says_they_are_young_is_never_read_as_a_worker() -> None:
    for text in [
        "I\u2019m a 15 year old and I think I was groomed on Minecraft",
        "im 14 and my ex sent my pics to people at school",
        "i am 13 years old",
        "Now, as a 14-year-old, explaining that to your parents is hard",
        "I'm just a 16-year-old, please don't send it",
        "im in year 9 and students in my class share nudes",
    ]:
        assert c.young_self(text), text
    for text in [
        "I'm 15 minutes late for my shift, sorry",
        "a 15 year old pupil told me she sent a nude",
        "he has the same interests as a 10-year-old",
        "I am in year 9's assembly on Monday",
        "I'm 25 and I teach year 9",
    ]:
        assert not c.young_self(text), text
    rules = c.Rules(young_alarm=0.8, first_person=0.3)
    ranking = {
        "worker_staff_targeted_lado": 0.5,
        "disclose_grooming": 0.2,
        "out_of_scope": 0.25,
        "worker_sextortion": 0.05,
    }
    decided = c.decide(ranking, [], rules, as_worker=True, not_worker=True)
    assert not any(n.startswith("worker_") for n in decided), decided
    assert max(decided, key=decided.get) == "out_of_scope" and abs(sum(decided.values()) - 1) < 1e-9, decided
    assert decided["disclose_sextortion"] > 0  # the worker topic that names a harm counts for the harm
    assert c.decide(ranking, [], rules, as_worker=False, not_worker=False) == ranking
    nudes = {
        "worker_sharing_nudes_guidance": 0.4,
        "out_of_scope": 0.3,
        "disclose_image_shared": 0.15,
        "greet": 0.15,
    }
    decided = c.decide(nudes, [], rules, as_worker=False, not_worker=True)
    assert max(decided, key=decided.get) == "disclose_image_shared", decided


def check_a_parent_or_a_writer_telling_their_own_story_is_not_a_worker() -> None:
    own = 0.6
    assert c.not_a_worker("my daughter sent a picture and now it's everywhere", False, 0.1, own)
    assert c.not_a_worker("Our 14-year-old son saw something horrible online", False, 0.1, own)
    assert c.not_a_worker("i told him i didnt want to and he said i owed him", False, 0.8, own)
    assert not c.not_a_worker("a parent told me her daughter was sent pictures", True, 0.1, own)  # a worker
    assert not c.not_a_worker("how do i record a disclosure properly", False, 0.4, own)
    assert not c.not_a_worker("my daughter's class teacher here: what do I do", True, 0.3, own)
    assert c.not_a_worker("I'm 15 and students in my class shared my pics", True, 0.5, own)  # age wins


def check_perspective_counts_the_writers_own_words() -> None:
    mine = c.perspective("i think my ex is tracking me and i am scared")
    theirs = c.perspective("a pupil in year 8 says her ex is tracking her")
    assert mine[0] > theirs[0] and theirs[1] == 1.0 and mine[1] == 0.0, (mine, theirs)


DANGER = ["kill myself", "self-harm", "end it all", "don't want to live", "hurt myself", "suicidal"]


def check_danger_words_make_danger_sure_enough_to_pass_the_fallback() -> None:
    rules = c.Rules()
    spread = {"risk_immediate": 0.12, "worker_kcsie_duties": 0.11, "disclose_grooming": 0.11, "greet": 0.1}
    total = sum(spread.values())
    spread = {n: p / total for n, p in spread.items()}  # danger first, but at under a third
    decided = c.decide(spread, [], rules, as_worker=False, danger_words=True)
    assert max(decided, key=decided.get) == "risk_immediate" and decided["risk_immediate"] >= 0.6, decided
    assert c.decide(spread, [], rules, as_worker=False, danger_words=False) == spread


def check_danger_words_are_heard_in_any_word_form() -> None:
    pattern = c.lexicon(DANGER)
    for text in [
        "ive been self harming again",
        "I thought about just ending it all.",
        "i dont want to live anymore",
        "been having thoughts of hurting myself",
        "selfharm",
        "I\u2019m suicidal",
    ]:
        assert c.says(pattern, text), text


def check_danger_words_negated_or_about_content_are_not_danger() -> None:
    pattern = c.lexicon(DANGER)
    for text in [
        "i'd never kill myself, im just fed up",
        "im not suicidal just really sad",
        "keep getting self harm videos on my fyp",
        "my teacher is killing me with this homework",
    ]:
        assert not c.says(pattern, text), text
    assert not c.says(None, "kill myself")


def check_danger_words_decide_unless_a_worker_asks() -> None:
    ranking = {"disclose_cyberbullying": 0.7, "risk_immediate": 0.1, "distress": 0.2}
    decided = c.decide(ranking, [], c.Rules(sentence=0.5, risk=0.3), as_worker=False, danger_words=True)
    assert max(decided, key=decided.get) == "risk_immediate", decided
    kept = c.decide(ranking, [], c.Rules(sentence=0.5, risk=0.3), as_worker=True, danger_words=True)
    assert kept == ranking


def check_the_linear_model_learns_and_gives_probabilities() -> None:
    rng = np.random.default_rng(3)
    x = np.vstack([rng.normal(1, 0.1, (20, 4)), rng.normal(-1, 0.1, (20, 4))])
    model = c.LinearModel.fit(x, ["a"] * 20 + ["b"] * 20, c=1.0)
    probs = model.probabilities(np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], dtype=float))
    assert np.allclose(probs.sum(axis=1), 1)
    assert model.classes == ["a", "b"] and probs[0, 0] > 0.9 and probs[1, 1] > 0.9, probs


def main() -> None:
    results = {}
    for name, check in sorted(globals().items()):
        if name.startswith("check_"):
            try:
                check()
                results[name] = "ok"
            except Exception as failed:  # every failure is reported by name
                results[name] = f"failed: {failed}"
    print(json.dumps(results))
    sys.exit(0)


if __name__ == "__main__":
    main()

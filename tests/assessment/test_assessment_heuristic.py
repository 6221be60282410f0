"""Pure heuristic: features, category and skill scores, criteria checks and explanations (no LangChain)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from coachup.assessment.checks import explain, judge_criteria, mix
from coachup.assessment.features import extract_features
from coachup.assessment.grammar import grammar_errors
from coachup.assessment.heuristic import category_scores, skill_scores
from coachup.assessment.library import CHECKS
from coachup.assessment.skills import get_skill
from coachup.assessment.types import CATEGORIES


def test_fillers_are_counted_in_context():
    # Given fillers, and the same words used legitimately
    f = extract_features(
        [
            "Um, so, like, I think it was, you know, kind of fine, uh.",
            "I like this kind of tool. You know the answer. I mean what I say.",
        ]
    )
    # Then only the filler uses count
    assert f.filler_counts == {"um": 1, "so": 1, "like": 1, "you know": 1, "kind of": 1, "uh": 1}
    assert f.hedge_counts == {"i think": 1}


def test_repetition_and_restarts_are_counted():
    # Given stutters, a repeated bigram and a restart across a filler
    f = extract_features(["The numbers the numbers are good good.", "I, uh, I want the the budget."])
    # Then each immediate repeat counts once, and "that that" would not
    assert f.immediate_repeats == 4
    assert extract_features(["He said that that was fine."]).immediate_repeats == 0


def test_stutter_marks_are_counted_and_collapsed_to_the_word_reached():
    # Given part-word repetitions, a held sound, a long pause, and hyphenated words that are not stutters
    f = extract_features(["B-b-but I-I-I think wh-what we sssso... need is a follow-up e-mail, so-so."])
    # Then three repetitions and a held sound count, one long pause, and the fragments are not words
    assert (f.sound_repeats, f.long_pauses) == (4, 1)
    assert f.immediate_repeats == 0 and f.words == 14  # "follow-up" and "e-mail" stay two words each
    # And filled pauses are the hesitation sounds among the fillers
    g = extract_features(["Um, so, like, I mean, uh, we shipped it."])
    assert g.filled_pauses == 2 and g.fillers == 5


def test_grammar_proxies_flag_common_errors_and_spare_correct_sentences():
    # Given sentences with classic errors
    errors = grammar_errors("me and him goes to the meeting and we was late".split())
    assert errors == {"pronoun_case": 2, "agreement": 1}
    assert grammar_errors("they doesn't agree but we have show them".split()) == {"agreement": 1, "verb_form": 1}
    assert grammar_errors("we could of won and did not have nothing".split()) == {"verb_form": 1, "double_negative": 1}
    # And correct ones stay clean
    for sentence in (
        "does he have the report",
        "let them go home",
        "the process is slow",
        "what matters to us is trust",
        "the numbers are good",
        "we have shown them the report",
    ):
        assert grammar_errors(sentence.split()) == {}, sentence
    # And a lowercase pronoun counts
    assert extract_features(["yesterday i went home."]).grammar_counts == {"lowercase_i": 1}


def test_rambling_answer_scores_lower_than_crisp_one(crisp_texts, rambling_texts):
    # Given a crisp and a rambling, filler-heavy answer about the same facts
    crisp = category_scores(extract_features(crisp_texts))
    rambling = category_scores(extract_features(rambling_texts))
    # Then the rambling one loses on fluency and conciseness (and clarity), the crisp one is near perfect
    assert rambling["fluency"] < crisp["fluency"] - 0.5
    assert rambling["conciseness"] < crisp["conciseness"] - 0.5
    assert rambling["clarity"] < crisp["clarity"]
    assert min(crisp.values()) >= 0.9


def test_run_on_sentence_costs_conciseness_and_clarity():
    # Given the same facts as short sentences and as one run-on
    short = "The project is late. The vendor shipped the wrong parts. New parts arrive on Friday."
    run_on = (
        "Well the thing about the project is that it is late and the reason is because the vendor who we "
        "chose shipped parts that were not the parts that we ordered and so we ordered the parts again "
        "which means that the project will be late."
    )
    a, b = category_scores(extract_features([short])), category_scores(extract_features([run_on]))
    # Then the run-on scores lower where a coach would say so
    assert b["conciseness"] < a["conciseness"] and b["clarity"] < a["clarity"] and b["fluency"] < a["fluency"]


def test_scoring_is_deterministic(rambling_texts):
    # Given the same text twice / Then identical features and scores
    assert extract_features(rambling_texts) == extract_features(list(rambling_texts))
    assert category_scores(extract_features(rambling_texts)) == category_scores(extract_features(rambling_texts))


def test_empty_answer_scores_zero_and_meets_nothing():
    f = extract_features(["", "   "])
    assert category_scores(f) == {c: 0.0 for c in CATEGORIES}
    skill = get_skill("pacing")
    assert skill_scores(f, skill.criteria) == {"fluency": 0.0}
    assert [v.met for v in judge_criteria(skill.criteria, f, CHECKS)] == [False] * len(skill.criteria)


def test_each_skill_is_scored_on_its_own_features():
    # Given a fluent but long-winded answer, and a short one full of fillers
    long_winded = extract_features(
        [
            "Well the thing about the project is that it is late and the reason that it is late is because the "
            "vendor who we had chosen shipped parts that were not the parts that we had ordered and so we had "
            "to order the parts again which we did yesterday and the parts will arrive on Friday."
        ]
    )
    fillers = extract_features(["Um, basically, the, like, release, uh, shipped, literally, on time. Um, yeah."])
    fluency, concise = get_skill("fluency_filler").criteria, get_skill("conciseness").criteria
    # Then the fluency skill scores only fluency, from fillers and hesitation, and the conciseness skill
    # only conciseness: the long-winded answer is good on the first and poor on the second
    assert set(skill_scores(long_winded, fluency)) == {"fluency"}
    assert set(skill_scores(long_winded, concise)) == {"conciseness"}
    assert skill_scores(long_winded, fluency)["fluency"] > 0.8 > 0.2 > skill_scores(long_winded, concise)["conciseness"]
    assert skill_scores(fillers, fluency)["fluency"] < 0.1
    # And the whole-answer scores still judge everything (the long-winded answer loses fluency to run-ons)
    assert category_scores(long_winded)["fluency"] < skill_scores(long_winded, fluency)["fluency"]
    # And a tiered pair of criteria on one factor counts that factor once
    assert skill_scores(fillers, fluency[1:2]) == skill_scores(fillers, fluency[:3])


def test_mostly_is_said_only_of_a_real_majority():
    assert mix({"um": 5, "like": 2}) == "mostly 'um' (5 of 7)"
    assert mix({"basically": 1, "like": 1, "um": 1, "you know": 1, "kind of": 1}) == (
        "5 different ones, most often 'basically' and 'kind of'"
    )
    assert mix({"um": 2, "like": 2}) == "2 different ones, most often 'like' and 'um'"
    assert mix({"i mean": 3}) == "all 'I mean'" and mix({}) == ""


def test_criteria_and_explanations_cite_counts_not_the_transcript(rambling_texts):
    # Given a filler-heavy answer and the fluency skill
    f = extract_features(rambling_texts)
    skill = get_skill("fluency_filler")
    verdicts = judge_criteria(skill.criteria, f, CHECKS)
    feedback, highlights, recs = explain(skill.criteria, verdicts, f, CHECKS)
    unmet = {v.id for v in verdicts if v.met is False}
    # Then the filler criteria fail, with counts in the advice, said once for the tiered pair
    assert {"filler_rate_moderate", "filler_rate_low"} <= unmet
    assert str(f.fillers) in recs[0] and "per 100 words" in recs[0]
    assert len([r for r in recs if "filler word" in r]) == 1
    assert feedback[0] == recs[0]
    # And no phrase of three or more transcript words is quoted
    transcript_words = " ".join(rambling_texts).lower()
    for sentence in [*feedback, *highlights, *recs]:
        for quoted in re.findall(r"'([^']+)'", sentence):
            assert len(quoted.split()) <= 2  # a lexicon entry such as 'you know', never a transcript span
        words = re.findall(r"[a-z']+", sentence.lower())
        for i in range(len(words) - 3):
            assert " ".join(words[i : i + 4]) not in transcript_words


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=4))
def test_any_text_scores_within_bounds(texts):
    scores = category_scores(extract_features(texts))
    assert set(scores) == set(CATEGORIES)
    assert all(0.0 <= v <= 1.0 for v in scores.values())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["we", "shipped", "the", "release", "on", "time", "and", "customers", "were", "happy", "revenue", "grew"]
        ),
        min_size=3,
        max_size=30,
    ),
    st.integers(min_value=1, max_value=5),
)
def test_adding_fillers_never_raises_fluency(words, n_fillers):
    # Given a sentence, and the same sentence with hesitation sounds inserted
    plain = " ".join(words) + "."
    filled = " ".join(["um"] * n_fillers + words) + "."
    # Then fluency and conciseness never go up
    a, b = category_scores(extract_features([plain])), category_scores(extract_features([filled]))
    assert b["fluency"] <= a["fluency"] and b["conciseness"] <= a["conciseness"]

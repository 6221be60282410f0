"""Properties of levels, per-skill scores and evidence minimums, over random transcripts (hypothesis).

- A level is the documented function of the met criteria: floor(10 * met / judged + 1/2).
- Skills differ where their features differ: fillers move the filler skill, not the stutter skill;
  repetitions move the stutter skill, not the filler skill; padding moves conciseness only.
- Below a skill's evidence minimum no level (and no score) is emitted.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coachup.assessment.evidence import measure_evidence
from coachup.assessment.features import count_words
from coachup.assessment.level import level_from_criteria
from coachup.assessment.providers import build_assessor
from coachup.assessment.service import assess_group
from coachup.assessment.skills import SKILLS, get_skill
from coachup.assessment.types import CriterionVerdict, Turn
from coachup.settings import load_settings

ASSESSOR = build_assessor(load_settings({}))
CONTENT = ["we", "shipped", "the", "release", "on", "time", "and", "customers", "were", "happy", "revenue", "grew"]
CONTENT += ["our", "team", "fixed", "two", "bugs", "before", "launch", "sales", "called", "every", "client"]
FILLERS = ["basically", "literally"]  # filler words that are not filled pauses (um, uh)
PADDING = ["the thing is that", "the fact that", "at the end of the day", "in order to"]


def _assess(texts: list[str], skills=SKILLS) -> dict:
    turns = [Turn(i, "user", t) for i, t in enumerate(texts)]
    return assess_group(turns, skills, ASSESSOR, skill_timeout_s=10, group_timeout_s=20)


def _by_skill(summary: dict) -> dict[str, dict]:
    return {item["skillId"]: item for item in summary["skillAssessments"]}


# sentences of distinct content words: no filler, hedge, padding or repetition until a test adds one
sentences = st.lists(st.sampled_from(CONTENT), min_size=5, max_size=14, unique=True).map(
    lambda ws: " ".join(ws).capitalize() + "."
)
answers = st.lists(sentences, min_size=3, max_size=6)  # 15..84 words


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([True, False, None]), max_size=12))
def test_the_level_is_the_documented_function_of_the_verdicts(mets):
    verdicts = [CriterionVerdict(f"c{i}", f"C{i}.", met) for i, met in enumerate(mets)]
    judged = [m for m in mets if m is not None]
    level = level_from_criteria(verdicts)
    if not judged:
        assert level is None
        return
    exact = 10 * sum(judged) / len(judged)
    assert level == int(exact + 0.5) and 0 <= level <= 10  # round half up, within the scale
    # monotone: meeting one more criterion never lowers it
    if False in judged:
        flipped = list(mets)
        flipped[flipped.index(False)] = True
        assert level_from_criteria([CriterionVerdict("x", "X.", m) for m in flipped]) >= level


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers, st.lists(st.sampled_from(FILLERS + ["um", "the the", "I mean,", "maybe"]), max_size=8))
def test_every_level_shown_follows_from_the_criteria_shown(parts, noise):
    # Given a random answer with some disfluencies
    text = " ".join(parts[:1] + noise + parts[1:])
    # When every catalogue skill is assessed
    for item in _assess([text])["skillAssessments"]:
        if item["status"] != "assessed":
            continue
        met = sum(1 for c in item["criteria"] if c["met"] is True)
        judged = sum(1 for c in item["criteria"] if c["met"] is not None)
        # Then the level is the function of the listed verdicts, and the first line states both
        assert item["level"] == level_from_criteria(
            [CriterionVerdict(c["id"], c["text"], c["met"]) for c in item["criteria"]]
        )
        assert (
            item["feedback"][0] == f"{item['skill']['name']}: level {item['level']}/10, {met} of {judged} criteria met."
        )
        # And no other line states a level, and no count is of nothing or ungrammatical
        for line in item["feedback"][1:] + item["highlights"] + item["recommendations"]:
            assert not re.search(r"level \d|\d/10|\b1 words\b|\b0 \w+ words\b|averaged 1 words", line), line


@settings(max_examples=25, deadline=None)
@given(answers, st.lists(st.sampled_from(FILLERS), min_size=3, max_size=8))
def test_fillers_move_the_filler_skill_not_the_stutter_skill(parts, fillers):
    clean = " ".join(parts)
    filled = " ".join(f"{f}, {p}" for f, p in zip(fillers, parts, strict=False)) + " " + " ".join(parts[len(fillers) :])
    before, after = _by_skill(_assess([clean])), _by_skill(_assess([filled]))
    assert after["fluency_filler"]["scores"]["fluency"] < before["fluency_filler"]["scores"]["fluency"]
    assert after["stutter_reduction"]["scores"] == before["stutter_reduction"]["scores"]
    assert after["stutter_reduction"]["level"] == before["stutter_reduction"]["level"] == 10


@settings(max_examples=25, deadline=None)
@given(answers, st.integers(min_value=1, max_value=4))
def test_repetitions_move_the_stutter_skill_not_the_filler_skill(parts, n):
    clean = " ".join(parts)
    stuttered = " ".join(p if i >= n else f"{p.split()[0]} {p}" for i, p in enumerate(parts))  # "We we shipped"
    before, after = _by_skill(_assess([clean])), _by_skill(_assess([stuttered]))
    assert after["stutter_reduction"]["scores"]["fluency"] < before["stutter_reduction"]["scores"]["fluency"]
    assert after["stutter_reduction"]["level"] < before["stutter_reduction"]["level"]
    assert after["fluency_filler"]["level"] == before["fluency_filler"]["level"]
    assert after["fluency_filler"]["scores"] == before["fluency_filler"]["scores"]


@settings(max_examples=25, deadline=None)
@given(answers, st.lists(st.sampled_from(PADDING), min_size=2, max_size=4))
def test_padding_moves_conciseness_not_fluency_or_stutters(parts, padding):
    clean = " ".join(parts)
    padded = " ".join(f"{pad} {p[0].lower()}{p[1:]}" for pad, p in zip(padding, parts, strict=False))
    padded += " " + " ".join(parts[len(padding) :])
    before, after = _by_skill(_assess([clean])), _by_skill(_assess([padded]))
    assert after["conciseness"]["scores"]["conciseness"] < before["conciseness"]["scores"]["conciseness"]
    assert after["conciseness"]["level"] < before["conciseness"]["level"] or before["conciseness"]["level"] == 0
    assert (
        "No padding phrases such as 'the thing is' or 'the reason is because'." in after["conciseness"]["unmetCriteria"]
    )
    for sid in ("fluency_filler", "stutter_reduction"):
        assert after[sid]["scores"] == before[sid]["scores"] and after[sid]["level"] == before[sid]["level"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from(CONTENT + FILLERS + ["b-b-but", "..."]), max_size=5), min_size=1, max_size=3))
def test_below_the_evidence_minimum_no_level_is_emitted(turn_words):
    texts = [" ".join(ws) for ws in turn_words]
    words = measure_evidence([Turn(i, "user", t) for i, t in enumerate(texts)]).user_words
    assert words == sum(count_words(t) for t in texts)
    summary = _assess(texts)
    for skill, item in zip(SKILLS, summary["skillAssessments"], strict=True):
        if words < skill.min_words:
            assert item["status"] == "insufficient_evidence" and item["level"] is None and item["scores"] is None
            assert item["message"] and not item["highlights"] and item["metCriteria"] == []
        else:
            assert item["status"] == "assessed" and item["level"] is not None
    if words < min(s.min_words for s in SKILLS):
        assert summary["status"] == ("skipped" if words == 0 else "insufficient_evidence")
        assert summary["scores"] is None and summary["highlights"] == []


@pytest.mark.parametrize("skill_ids", [("fluency_filler", "conciseness")])
def test_a_fluent_but_long_winded_answer_gets_visibly_different_results(skill_ids):
    # Given a smooth answer (no fillers, no stutters) that pads and repeats itself at length
    text = (
        "The thing about the project is that it is late, and the reason that it is late is because the vendor "
        "who we had chosen to supply the parts that we needed for the project shipped parts that were not the "
        "parts that we had ordered, so we had to order the parts again, which we did yesterday, and the parts "
        "that we ordered again will arrive on Friday, which means that the project will be late."
    )
    items = _by_skill(_assess([text], [get_skill(s) for s in skill_ids]))
    fluency, concise = items["fluency_filler"], items["conciseness"]
    # Then the fluency skill is high and the conciseness skill low, in level, score and feedback
    assert fluency["level"] >= 8 and concise["level"] <= 4
    assert fluency["scores"]["fluency"] > 0.8 > 0.2 > concise["scores"]["conciseness"]
    assert not fluency["unmetCriteria"] or len(fluency["unmetCriteria"]) == 1
    assert any("padding" in line for line in concise["recommendations"])
    assert not any("padding" in line for line in fluency["feedback"] + fluency["recommendations"])

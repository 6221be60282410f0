"""assess_group: the summary shape, evidence minimums and skipped groups, deadlines, failure typing, observers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from coachup.assessment.providers import build_assessor
from coachup.assessment.service import SkillOutcome, assess_group
from coachup.assessment.skills import SKILLS, get_skill
from coachup.assessment.types import CATEGORIES, RUBRIC_VERSION, CriterionVerdict, Skill, SkillResult, Turn
from coachup.errors import (
    PermanentError,
    RetryableError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
    ValidationFailed,
)
from coachup.settings import load_settings

THREE = [get_skill("clarity_eloquence"), get_skill("conciseness"), get_skill("fluency_filler")]
SUMMARY_KEYS = {
    "rubricVersion",
    "status",
    "scores",
    "skillAssessments",
    "highlights",
    "recommendations",
    "categories",
    "meta",
    "errors",
}
META_KEYS = {
    "provider",
    "model",
    "skillsCount",
    "tokensIn",
    "tokensOut",
    "costUsd",
    "latencyMsTotal",
    "messageCount",
    "durationMs",
    "slice",
    "evidence",
}
SKILL_KEYS = {
    "skill",
    "skillId",
    "rubricHash",
    "status",
    "level",
    "scores",
    "metCriteria",
    "unmetCriteria",
    "criteria",
    "feedback",
    "highlights",
    "recommendations",
    "message",
}


class StubAssessor:
    """Scores every skill `score` (per skill if given) unless `actions[skill_id]` blocks or raises first."""

    provider = "stub"
    model = "stub-1"

    def __init__(
        self, actions: dict[str, Callable[[], None]] | None = None, scores: dict[str, float] | None = None
    ) -> None:
        self.actions = actions or {}
        self.scores = scores or {}

    def assess_skill(self, skill: Skill, turns: Sequence[Turn]) -> SkillResult:
        assert all(t.role == "user" for t in turns)
        if skill.id in self.actions:
            self.actions[skill.id]()
        value = self.scores.get(skill.id, 0.5)
        return SkillResult(
            skill.id,
            skill.rubric_hash,
            level=3,
            scores={c: value for c in skill.focus},
            answer_scores={c: value for c in CATEGORIES},
            criteria=[CriterionVerdict(c.id, c.text, i == 0) for i, c in enumerate(skill.criteria)],
            feedback=[f"{skill.id} ok"],
            highlights=[f"{skill.id} good"],
            recommendations=[f"{skill.id} next"],
            tokens_in=10,
            tokens_out=5,
            cost_usd=0.001,
            latency_ms=7,
        )


def _raise(exc: Exception) -> Callable[[], None]:
    def action() -> None:
        raise exc

    return action


@pytest.fixture
def gate():
    """An event blocked skills wait on; set at teardown so no thread outlives the test for long."""
    event = threading.Event()
    yield event
    event.set()


def test_summary_has_exactly_the_documented_shape(base_settings):
    # Given a timed group with assistant turns, assessed by the heuristic for every catalogue skill
    t0 = datetime(2025, 8, 19, 14, 0, tzinfo=UTC)
    turns = [
        Turn(4, "user", "So, um, the review, like, went okay I guess, and the team was very happy.", t0),
        Turn(5, "assistant", "What were the numbers?", t0 + timedelta(seconds=3)),
        Turn(6, "user", "Revenue grew eight percent. Next we will fix onboarding.", t0 + timedelta(seconds=9)),
    ]
    summary = assess_group(turns, SKILLS, build_assessor(base_settings), skill_timeout_s=5, group_timeout_s=10)
    # Then the keys are exactly the documented ones
    assert set(summary) == SUMMARY_KEYS and set(summary["meta"]) == META_KEYS
    assert summary["rubricVersion"] == RUBRIC_VERSION and summary["status"] == "assessed"
    assert summary["categories"] == list(CATEGORIES) and list(summary["scores"]) == list(CATEGORIES)
    assert all(0 <= v <= 1 and round(v, 3) == v for v in summary["scores"].values())
    assert [item["skillId"] for item in summary["skillAssessments"]] == [s.id for s in SKILLS]
    for skill, item in zip(SKILLS, summary["skillAssessments"], strict=True):
        assert set(item) == SKILL_KEYS and item["skill"] == {
            "id": skill.id,
            "name": skill.title,
            "category": skill.category,
        }
        assert item["rubricHash"] == skill.rubric_hash and isinstance(item["feedback"], list)
        if skill.min_words > 24:  # 24 user words: a pitch or a story needs more
            assert (item["status"], item["level"], item["scores"]) == ("insufficient_evidence", None, None)
            assert item["message"] == f"Not enough speech to assess (24 words; {skill.min_words} needed)."
            continue
        assert item["status"] == "assessed" and 0 <= item["level"] <= 10 and item["message"] is None
        assert list(item["scores"]) == list(skill.focus) and all(0 <= v <= 1 for v in item["scores"].values())
        assert [c["id"] for c in item["criteria"]] == list(skill.criterion_ids)
        assert item["metCriteria"] == [c["text"] for c in item["criteria"] if c["met"]]
        assert item["unmetCriteria"] == [c["text"] for c in item["criteria"] if c["met"] is False]
    assert len(summary["highlights"]) <= 3 and len(summary["recommendations"]) <= 3
    assert summary["errors"] == []
    # And the meta describes the group: all turns counted, only user turns assessed, ts-derived duration
    meta = summary["meta"]
    assert (meta["provider"], meta["model"], meta["skillsCount"]) == ("heuristic", "heuristic-v2", len(SKILLS))
    assert (meta["tokensIn"], meta["tokensOut"], meta["costUsd"]) == (0, 0, 0.0)
    assert meta["messageCount"] == 3 and meta["durationMs"] == 9000
    assert meta["slice"] == {"start_index": 4, "end_index": 6}
    assert meta["evidence"] == {"userWords": 24, "userTurns": 2}
    assert meta["latencyMsTotal"] >= 0


def test_duration_is_unknown_without_two_comparable_timestamps(crisp_turns):
    # Given turns without ts, with one ts, and with naive and aware ts mixed
    one = [Turn(0, "user", crisp_turns[0].content, datetime(2025, 1, 1, tzinfo=UTC)), *crisp_turns[1:]]
    mixed = [
        Turn(0, "user", crisp_turns[0].content, datetime(2025, 1, 1)),
        Turn(1, "user", "Yes.", datetime(2025, 1, 1, tzinfo=UTC)),
    ]
    # Then durationMs is null (unknown), never 0
    for turns in (crisp_turns, one, mixed):
        summary = assess_group(turns, THREE, StubAssessor(), skill_timeout_s=1, group_timeout_s=2)
        assert summary["meta"]["durationMs"] is None


def test_category_scores_average_the_skills_that_succeeded(crisp_turns):
    # Given per-skill scores of 0.2 and 0.4, and a third skill that fails
    assessor = StubAssessor(
        {"fluency_filler": _raise(UpstreamRejected("400"))}, {"clarity_eloquence": 0.2, "conciseness": 0.4}
    )
    summary = assess_group(crisp_turns, THREE, assessor, skill_timeout_s=2, group_timeout_s=3)
    # Then the group score is the mean of their answer scores, usage is summed, and the failure is listed
    assert summary["scores"] == {c: 0.3 for c in CATEGORIES}
    assert (summary["meta"]["tokensIn"], summary["meta"]["costUsd"]) == (20, 0.002)
    assert summary["errors"] == [
        {"skillId": "fluency_filler", "rubricHash": THREE[2].rubric_hash, "error": "upstream_rejected"}
    ]
    assert summary["highlights"] == ["clarity_eloquence good", "conciseness good"]
    # And each skill keeps its own scores, on its own categories
    assert [a["scores"] for a in summary["skillAssessments"]] == [{"clarity": 0.2}, {"conciseness": 0.4}]


def test_one_skill_timing_out_is_an_error_while_others_score(crisp_turns, gate):
    # Given a skill that blocks past its 0.3 s budget
    assessor = StubAssessor({"conciseness": lambda: gate.wait(5)})
    started = time.monotonic()
    summary = assess_group(crisp_turns, THREE, assessor, skill_timeout_s=0.3, group_timeout_s=5)
    # Then it is recorded as a timeout, the others scored, and nobody waited for the stuck thread
    assert time.monotonic() - started < 1.5
    assert [e["skillId"] for e in summary["errors"]] == ["conciseness"]
    assert summary["errors"][0] == {"skillId": "conciseness", "rubricHash": THREE[1].rubric_hash, "error": "timeout"}
    assert [a["skillId"] for a in summary["skillAssessments"]] == ["clarity_eloquence", "fluency_filler"]


def test_group_deadline_cuts_off_unfinished_skills(crisp_turns, gate):
    # Given generous skill budgets but a 0.3 s group budget, and two skills that block
    assessor = StubAssessor({"conciseness": lambda: gate.wait(5), "fluency_filler": lambda: gate.wait(5)})
    started = time.monotonic()
    summary = assess_group(crisp_turns, THREE, assessor, skill_timeout_s=5, group_timeout_s=0.3)
    # Then the group returns at its deadline with both blocked skills as timeouts
    assert time.monotonic() - started < 1.5
    assert {e["skillId"]: e["error"] for e in summary["errors"]} == {
        "conciseness": "timeout",
        "fluency_filler": "timeout",
    }
    assert [a["skillId"] for a in summary["skillAssessments"]] == ["clarity_eloquence"]


def test_every_skill_failing_retryably_raises_retryable(crisp_turns, gate):
    # Given a timeout, a 429 and a 5xx
    assessor = StubAssessor(
        {
            "clarity_eloquence": lambda: gate.wait(5),
            "conciseness": _raise(UpstreamRateLimited("429")),
            "fluency_filler": _raise(UpstreamUnavailable("503")),
        }
    )
    # When / Then the group fails with a retryable error naming the tally
    with pytest.raises(RetryableError) as caught:
        assess_group(crisp_turns, THREE, assessor, skill_timeout_s=0.2, group_timeout_s=2)
    assert "all 3 skills failed" in caught.value.message
    assert caught.value.type == "timeout"


def test_every_skill_failing_permanently_raises_permanent(crisp_turns):
    assessor = StubAssessor({s.id: _raise(UpstreamRejected("401")) for s in THREE})
    with pytest.raises(PermanentError) as caught:
        assess_group(crisp_turns, THREE, assessor, skill_timeout_s=1, group_timeout_s=2)
    assert not isinstance(caught.value, RetryableError) and caught.value.type == "upstream_rejected"


def test_unexpected_exception_in_one_skill_is_contained(crisp_turns):
    assessor = StubAssessor({"conciseness": _raise(KeyError("bug"))})
    summary = assess_group(crisp_turns, THREE, assessor, skill_timeout_s=1, group_timeout_s=2)
    assert summary["errors"][0]["error"] == "internal_error" and len(summary["skillAssessments"]) == 2


def test_on_skill_is_called_once_per_skill_in_the_calling_thread_and_its_errors_are_swallowed(crisp_turns):
    # Given an observer that records and then raises
    seen: list[tuple[str, str | None, int]] = []

    def observer(outcome: SkillOutcome) -> None:
        seen.append((outcome.skill.id, outcome.error, threading.get_ident()))
        raise RuntimeError("observer bug")

    assessor = StubAssessor({"fluency_filler": _raise(UpstreamUnavailable("502"))})
    # When assessing
    summary = assess_group(crisp_turns, THREE, assessor, skill_timeout_s=1, group_timeout_s=2, on_skill=observer)
    # Then the work completed, and the observer saw each skill once, from this thread
    assert len(summary["skillAssessments"]) == 2
    assert [(s, e) for s, e, _ in seen] == [
        ("clarity_eloquence", None),
        ("conciseness", None),
        ("fluency_filler", "upstream_unavailable"),
    ]
    assert {tid for _, _, tid in seen} == {threading.get_ident()}


def test_no_skills_is_a_validation_failure(crisp_turns):
    with pytest.raises(ValidationFailed):
        assess_group(crisp_turns, [], StubAssessor(), skill_timeout_s=1, group_timeout_s=1)


def test_a_group_with_no_user_speech_is_skipped_not_failed():
    # Given a group where only the assistant spoke (a greeting), and an assessor that must not be called
    turns = [Turn(0, "assistant", "Welcome back! Good luck today."), Turn(1, "user", "   "), Turn(2, "system", "x")]
    assessor = StubAssessor({s.id: _raise(AssertionError("called")) for s in THREE})
    seen: list[SkillOutcome] = []
    # When assessing it
    summary = assess_group(turns, THREE, assessor, skill_timeout_s=1, group_timeout_s=1, on_skill=seen.append)
    # Then it is a terminal, non-error outcome: skipped, no scores, every skill said why, nothing observed
    assert summary["status"] == "skipped" and summary["scores"] is None and summary["errors"] == []
    assert summary["meta"]["evidence"] == {"userWords": 0, "userTurns": 0} and seen == []
    assert summary["highlights"] == summary["recommendations"] == []
    for item in summary["skillAssessments"]:
        assert (item["status"], item["level"], item["scores"]) == ("insufficient_evidence", None, None)
        assert item["message"] == "No user speech in this interaction to assess."
        assert {c["met"] for c in item["criteria"]} == {None} and item["metCriteria"] == item["unmetCriteria"] == []


def test_below_the_evidence_minimum_there_is_no_level_and_the_summary_says_so():
    # Given a one-word answer (the "a")
    turns = [Turn(0, "user", "a")]
    # When assessing it with the real offline assessor
    summary = assess_group(turns, THREE, build_assessor(load_settings({})), skill_timeout_s=5, group_timeout_s=5)
    # Then no skill has a level or scores, each says why, and the summary status says so
    assert summary["status"] == "insufficient_evidence" and summary["scores"] is None
    for item in summary["skillAssessments"]:
        assert (item["status"], item["level"], item["scores"]) == ("insufficient_evidence", None, None)
        assert item["message"] == "Not enough speech to assess (1 word; 15 needed)."
        assert item["feedback"] == [f"{item['skill']['name']}: {item['message']}"]
    # And no highlight quotes a statistic of nothing ("0 filler words in 1 words")
    assert summary["highlights"] == []
    assert summary["recommendations"] == ["Answer in full sentences: 15 words or more let the coach assess this."]


def test_skills_below_their_own_minimum_are_listed_while_others_score(crisp_turns):
    # Given 32 user words: enough for clarity (15) and a sales pitch (25), not for a skill needing 40
    pitch = get_skill("sales_persuasiveness")
    long_pitch = replace(pitch, id="long_pitch", min_words=40)
    summary = assess_group(
        crisp_turns, [THREE[0], pitch, long_pitch], StubAssessor(), skill_timeout_s=1, group_timeout_s=2
    )
    # Then the two that have enough are assessed, the third is listed without a level, and the group scored
    statuses = {a["skillId"]: (a["status"], a["level"]) for a in summary["skillAssessments"]}
    assert statuses == {
        "clarity_eloquence": ("assessed", 3),
        "sales_persuasiveness": ("assessed", 3),
        "long_pitch": ("insufficient_evidence", None),
    }
    assert summary["status"] == "assessed" and summary["scores"] == {c: 0.5 for c in CATEGORIES}
    assert summary["meta"]["evidence"] == {"userWords": 32, "userTurns": 2}

"""The `openai` provider (langchain-openai ChatOpenAI) against a local fake OpenAI server on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest

from coachup.assessment.providers import build_assessor
from coachup.assessment.service import assess_group
from coachup.assessment.skills import SKILLS, get_skill
from coachup.errors import RetryableError, UpstreamRateLimited, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable

SKILL = get_skill("conciseness")
HEADERS = {
    "x-request-id": "6f1c2a9e-2b7d-4c1e-9a51-0d3c8b7e4f10",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}


@pytest.fixture
def valid_reply(completion):
    body = {
        "skill_id": "conciseness",
        "level": 2,  # ignored: the level follows from the criteria
        "criteria": [
            {"id": "no_padding_phrases", "met": True},
            {"id": "waste_under_quarter", "met": True},
            {"id": "low_waste_words", "met": True},
            {"id": "low_word_repetition", "met": True},
            {"id": "to_the_point_sentences", "met": False},
        ],
        "scores": {"correctness": 0.9, "clarity": 0.85, "conciseness": 0.7, "fluency": 0.8},
        "skill_scores": {"conciseness": 0.75},
        "feedback": "Clear and mostly brief.",
        "highlights": ["No padding."],
        "recommendations": ["Shorten one sentence."],
    }
    return lambda request: completion(json.dumps(body), prompt_tokens=1200, completion_tokens=300)


def test_success_reports_tokens_cost_and_sends_request_headers(fake_openai, openai_settings, crisp_turns, valid_reply):
    # Given a server answering a valid assessment
    fake_openai.body = valid_reply
    assessor = build_assessor(openai_settings, headers=HEADERS)
    # When assessing one skill
    result = assessor.assess_skill(SKILL, crisp_turns)
    # Then tokens come from the response usage and cost from the gpt-4o-mini price
    assert (assessor.provider, assessor.model) == ("openai", "gpt-4o-mini")
    assert (result.tokens_in, result.tokens_out) == (1200, 300)
    assert result.cost_usd == pytest.approx((1200 * 0.15 + 300 * 0.60) / 1e6)
    # And the shape matches the offline assessor's: met criteria decided by the model, level by us (4 of 5)
    assert result.level == 8 and result.unmet_criteria == [SKILL.criteria[-1].text]
    assert (
        result.scores == {"conciseness": 0.75} and result.feedback[0] == "Conciseness: level 8/10, 4 of 5 criteria met."
    )
    assert result.feedback[1:] == ["Clear and mostly brief."]
    # And the upstream saw one call with our correlation headers, the key, the model and the transcript
    (request,) = fake_openai.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["x-request-id"] == HEADERS["x-request-id"]
    assert request["headers"]["traceparent"] == HEADERS["traceparent"]
    assert request["headers"]["authorization"] == "Bearer sk-test-not-a-real-key"
    body = request["json"]
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"].startswith("<transcript>\n[0] I ran the quarterly review")
    assert all(f"- {c.id} [{c.category}/{c.aspect}]: " in body["messages"][0]["content"] for c in SKILL.criteria)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, UpstreamRateLimited),
        (500, UpstreamUnavailable),
        (503, UpstreamUnavailable),
        (401, UpstreamRejected),
        (400, UpstreamRejected),
    ],
)
def test_http_errors_map_to_typed_failures_without_sdk_retries(
    fake_openai, openai_settings, crisp_turns, status, error
):
    # Given a server answering an error status
    fake_openai.status = status
    assessor = build_assessor(openai_settings, headers=HEADERS)
    # When / Then the failure is typed, and retryability follows the status
    with pytest.raises(error) as caught:
        assessor.assess_skill(SKILL, crisp_turns)
    assert isinstance(caught.value, RetryableError) == (status in (429, 500, 503))
    assert "sk-test" not in caught.value.message
    # And the SDK did not retry on its own (Celery owns retries)
    assert len(fake_openai.requests) == 1


def test_slow_server_is_an_upstream_timeout(fake_openai, openai_settings, crisp_turns):
    # Given a server slower than the skill budget of 0.5 s
    fake_openai.delay_s = 3.0
    assessor = build_assessor(openai_settings.replace(skill_timeout_ms=500), headers=HEADERS)
    # When assessing
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        assessor.assess_skill(SKILL, crisp_turns)
    # Then the call gave up near the budget, once
    assert time.monotonic() - started < 2.0
    assert len(fake_openai.requests) == 1


def test_unreachable_server_is_upstream_unavailable(fake_openai, openai_settings, crisp_turns):
    # Given a base URL where nothing listens
    fake_openai.stop()
    assessor = build_assessor(openai_settings, headers=HEADERS)
    # When / Then
    with pytest.raises(UpstreamUnavailable):
        assessor.assess_skill(SKILL, crisp_turns)


def test_off_schema_reply_is_invalid_output(fake_openai, openai_settings, crisp_turns, completion):
    fake_openai.body = lambda request: completion("Sure! The speaker did great.")
    assessor = build_assessor(openai_settings)
    with pytest.raises(Exception) as caught:
        assessor.assess_skill(SKILL, crisp_turns)
    assert getattr(caught.value, "type", None) == "invalid_output"


def test_group_over_openai_fails_retryably_when_every_call_is_rate_limited(fake_openai, openai_settings, crisp_turns):
    # Given an upstream that rate-limits every call
    fake_openai.status = 429
    assessor = build_assessor(openai_settings, headers=HEADERS)
    # When the whole group is assessed / Then the job-level error is retryable (Celery will back off)
    with pytest.raises(UpstreamRateLimited):
        assess_group(crisp_turns, SKILLS[:3], assessor, skill_timeout_s=2, group_timeout_s=3)
    assert len(fake_openai.requests) == 3
    assert {r["headers"]["x-request-id"] for r in fake_openai.requests} == {HEADERS["x-request-id"]}


def test_openai_and_offline_summaries_have_the_same_per_skill_shape(
    fake_openai, openai_settings, base_settings, crisp_turns, valid_reply
):
    # Given the same group assessed by the openai provider (fake server) and by the offline heuristic
    fake_openai.body = valid_reply
    skills = [SKILL]
    online = assess_group(crisp_turns, skills, build_assessor(openai_settings), skill_timeout_s=2, group_timeout_s=3)
    offline = assess_group(crisp_turns, skills, build_assessor(base_settings), skill_timeout_s=2, group_timeout_s=3)
    # Then both summaries and their skill items carry the same fields, with levels from our function
    assert set(online) == set(offline) and set(online["meta"]) == set(offline["meta"])
    (a,), (b,) = online["skillAssessments"], offline["skillAssessments"]
    assert set(a) == set(b) and a["status"] == b["status"] == "assessed"
    assert a["level"] == 8 and [c["id"] for c in a["criteria"]] == [c["id"] for c in b["criteria"]]
    assert set(a["scores"]) == set(b["scores"]) == {"conciseness"}


def test_too_little_speech_makes_no_upstream_call(fake_openai, openai_settings, make_turns):
    # Given a group whose user said only a few words
    turns = make_turns(["Yes, that works."], with_assistant=True)
    # When it is assessed over the openai provider
    summary = assess_group(turns, SKILLS[:3], build_assessor(openai_settings), skill_timeout_s=2, group_timeout_s=3)
    # Then no tokens were spent: nothing was sent upstream, and every skill says why
    assert fake_openai.requests == [] and summary["status"] == "insufficient_evidence"
    assert summary["meta"]["tokensIn"] == 0 and {a["level"] for a in summary["skillAssessments"]} == {None}

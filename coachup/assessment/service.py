"""Assess one interaction group for several skills in parallel, under per-skill and whole-group deadlines.

First the evidence: a skill whose minimum of user speech (`evidence.shortfall`) is not met is reported
as "not enough speech to assess" without calling the assessor, and a group with no user speech at all
is `skipped` (a normal outcome, never an error). A skill that fails (or misses its deadline) is recorded
in `errors` and the others still score. Only when every skill that ran failed does the group fail: with
a `RetryableError` when at least one failure could pass on retry (timeout, 429, 5xx, connection), else
with a `PermanentError`, so the job retries or dead-letters as the errors module prescribes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from coachup.assessment.evidence import measure_evidence, shortfall
from coachup.assessment.summary import build_summary
from coachup.assessment.types import Assessor, CriterionVerdict, Skill, SkillResult, Turn
from coachup.assessment.upstream import classify_error
from coachup.errors import CoachupError, PermanentError, RetryableError, UpstreamTimeout, ValidationFailed

__all__ = ["SkillOutcome", "assess_group", "MAX_PARALLEL_SKILLS"]

log = logging.getLogger(__name__)

MAX_PARALLEL_SKILLS = 8  # threads per group; the catalogue has 7 skills, so every skill starts at once


@dataclass
class SkillOutcome:
    """How one skill went: a result (assessed, or not enough speech), or a short error type ("timeout",
    "rate_limited", ...); latency in ms."""

    skill: Skill
    result: SkillResult | None
    error: str | None
    latency_ms: int
    exception: CoachupError | None = None


def assess_group(
    turns: Sequence[Turn],
    skills: Sequence[Skill],
    assessor: Assessor,
    *,
    skill_timeout_s: float,
    group_timeout_s: float,
    on_skill: Callable[[SkillOutcome], None] | None = None,
) -> dict:
    """Assess the user turns of `turns` for each skill and return the summary dict (see `summary`).

    `skill_timeout_s` bounds each skill from the moment the group starts; `group_timeout_s` bounds the
    whole call. `on_skill` is called once per skill that ran, in the calling thread; its exceptions are
    logged and swallowed. Raises `ValidationFailed` with no skills, and `RetryableError` /
    `PermanentError` subclasses when every skill that ran failed.
    """
    if not skills:
        raise ValidationFailed("no skills to assess")
    user_turns = [t for t in turns if t.role == "user" and t.content.strip()]
    evidence = measure_evidence(user_turns)
    outcomes: list[SkillOutcome | None] = []
    runnable: list[tuple[int, Skill]] = []
    for skill in skills:
        reason = shortfall(skill, evidence)
        outcomes.append(None if reason is None else SkillOutcome(skill, _not_assessed(skill, reason), None, 0))
        if reason is None:
            runnable.append((len(outcomes) - 1, skill))
    if runnable:
        ran = _run(runnable, user_turns, assessor, skill_timeout_s, group_timeout_s, on_skill)
        for (position, _skill), outcome in zip(runnable, ran, strict=True):
            outcomes[position] = outcome
        _raise_if_all_failed(ran)
    return build_summary(turns, [o for o in outcomes if o is not None], assessor, evidence)


def _run(
    runnable: Sequence[tuple[int, Skill]],
    user_turns: Sequence[Turn],
    assessor: Assessor,
    skill_timeout_s: float,
    group_timeout_s: float,
    on_skill: Callable[[SkillOutcome], None] | None,
) -> list[SkillOutcome]:
    """Run `runnable` skills in parallel under the deadlines; one outcome each, in order."""
    started = time.monotonic()
    group_deadline = started + group_timeout_s
    outcomes: list[SkillOutcome] = []
    pool = ThreadPoolExecutor(max_workers=min(len(runnable), MAX_PARALLEL_SKILLS), thread_name_prefix="assess")
    try:
        futures = [(skill, pool.submit(assessor.assess_skill, skill, user_turns)) for _, skill in runnable]
        for skill, future in futures:
            outcome = _await(skill, future, min(started + skill_timeout_s, group_deadline), started, group_deadline)
            outcomes.append(outcome)
            _notify(on_skill, outcome)
    finally:
        # Never wait for a thread stuck past its deadline; a real provider call ends at its own timeout.
        pool.shutdown(wait=False, cancel_futures=True)
    return outcomes


def _not_assessed(skill: Skill, reason: str) -> SkillResult:
    """The result of a skill below its evidence minimum: no level, no scores, the reason as its message."""
    return SkillResult(
        skill_id=skill.id,
        rubric_hash=skill.rubric_hash,
        status="insufficient_evidence",
        criteria=[CriterionVerdict(c.id, c.text, None) for c in skill.criteria],
        feedback=[f"{skill.title}: {reason}"],
        recommendations=[f"Answer in full sentences: {skill.min_words} words or more let the coach assess this."],
        message=reason,
    )


def _await(skill: Skill, future, deadline: float, started: float, group_deadline: float) -> SkillOutcome:
    try:
        result = future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        future.cancel()
        which = "group" if deadline >= group_deadline else "skill"
        error: CoachupError = UpstreamTimeout(f"{which} deadline passed before skill {skill.id} finished")
    except Exception as exc:  # any failure of one skill is that skill's error, never the group's
        error = classify_error(exc)
    else:
        return SkillOutcome(skill, result, None, result.latency_ms)
    return SkillOutcome(skill, None, error.type, int((time.monotonic() - started) * 1000), error)


def _notify(on_skill: Callable[[SkillOutcome], None] | None, outcome: SkillOutcome) -> None:
    if on_skill is None:
        return
    try:
        on_skill(outcome)
    except Exception:  # observers never break work
        log.warning("assessment on_skill observer failed", extra={"skillId": outcome.skill.id}, exc_info=True)


def _raise_if_all_failed(outcomes: list[SkillOutcome]) -> None:
    if any(o.result is not None for o in outcomes):
        return
    errors = [o.exception for o in outcomes if o.exception is not None]
    tally = ", ".join(f"{kind} x{n}" for kind, n in Counter(e.type for e in errors).items())
    message = f"all {len(outcomes)} skills failed: {tally}"
    retryable = [e for e in errors if isinstance(e, RetryableError)]
    if retryable:
        first = retryable[0]
        raise type(first)(message, type=first.type) from first
    first_permanent = next((e for e in errors if isinstance(e, PermanentError)), None)
    if first_permanent is not None:
        raise type(first_permanent)(message, type=first_permanent.type) from first_permanent
    raise PermanentError(message, type="internal_error")

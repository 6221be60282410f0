"""The group summary dict (camelCase, the stored and published shape; CONTRACTS.md section 1).

`status` is `assessed` when at least one skill was assessed, `insufficient_evidence` when the user spoke
but too little for every skill, and `skipped` when the group holds no user speech at all (a terminal,
non-error outcome). `scores` averages the assessed skills' scores of the whole answer (null when none
was assessed); each skill item carries its own level (0..10) and its own scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from coachup.assessment.evidence import Evidence
from coachup.assessment.types import CATEGORIES, RUBRIC_VERSION, Assessor, SkillResult, Turn

if TYPE_CHECKING:  # pragma: no cover
    from coachup.assessment.service import SkillOutcome

__all__ = ["build_summary", "summary_status", "MAX_HIGHLIGHTS", "MAX_RECOMMENDATIONS"]

MAX_HIGHLIGHTS = 3
MAX_RECOMMENDATIONS = 3


def summary_status(evidence: Evidence, results: Iterable[SkillResult]) -> str:
    if evidence.user_words == 0:
        return "skipped"
    return "assessed" if any(r.status == "assessed" for r in results) else "insufficient_evidence"


def build_summary(
    turns: Sequence[Turn], outcomes: Sequence[SkillOutcome], assessor: Assessor, evidence: Evidence
) -> dict[str, Any]:
    """The summary for these outcomes (one per requested skill, in request order)."""
    listed = [o for o in outcomes if o.result is not None]
    results = [o.result for o in listed if o.result is not None]
    assessed = [r for r in results if r.status == "assessed"]
    status = summary_status(evidence, results)
    # too little speech: say once what would help; no speech at all: nothing to advise on
    advice_from = assessed or (results[:1] if status == "insufficient_evidence" else [])
    return {
        "rubricVersion": RUBRIC_VERSION,
        "categories": list(CATEGORIES),
        "status": status,
        "scores": _group_scores(assessed),
        "skillAssessments": [_item(o.skill, o.result) for o in listed if o.result is not None],
        "highlights": _first_unique((h for r in assessed for h in r.highlights), MAX_HIGHLIGHTS),
        "recommendations": _first_unique((x for r in advice_from for x in r.recommendations), MAX_RECOMMENDATIONS),
        "meta": {
            "provider": assessor.provider,
            "model": assessor.model,
            "skillsCount": len(outcomes),
            "tokensIn": sum(r.tokens_in for r in results),
            "tokensOut": sum(r.tokens_out for r in results),
            "costUsd": round(sum(r.cost_usd for r in results), 6),
            "latencyMsTotal": sum(o.latency_ms for o in outcomes),
            "messageCount": sum(1 for t in turns if t.role in ("user", "assistant")),
            "durationMs": _duration_ms(turns),
            "slice": {
                "start_index": min((t.index for t in turns), default=0),
                "end_index": max((t.index for t in turns), default=0),
            },
            "evidence": evidence.as_dict(),
        },
        "errors": [
            {"skillId": o.skill.id, "rubricHash": o.skill.rubric_hash, "error": o.error}
            for o in outcomes
            if o.result is None
        ],
    }


def _group_scores(assessed: Sequence[SkillResult]) -> dict[str, float | None] | None:
    """Per category, the mean of the assessed skills' scores of the whole answer (3 decimals)."""
    if not assessed:
        return None
    out: dict[str, float | None] = {}
    for c in CATEGORIES:
        values = [r.answer_scores[c] for r in assessed if r.answer_scores and c in r.answer_scores]
        out[c] = round(sum(values) / len(values), 3) if values else None
    return out


def _item(skill, result: SkillResult) -> dict[str, Any]:
    return {
        "skill": {"id": skill.id, "name": skill.title, "category": skill.category},
        "skillId": skill.id,
        "rubricHash": result.rubric_hash,
        "status": result.status,
        "level": result.level,
        "scores": None if result.scores is None else {c: round(v, 3) for c, v in result.scores.items()},
        "metCriteria": result.met_criteria,
        "unmetCriteria": result.unmet_criteria,
        "criteria": [{"id": v.id, "text": v.text, "met": v.met} for v in result.criteria],
        "feedback": list(result.feedback),
        "highlights": list(result.highlights),
        "recommendations": list(result.recommendations),
        "message": result.message,
    }


def _first_unique(items, limit: int) -> list:
    out: list = []
    for item in items:
        if len(out) >= limit:
            break
        if item not in out:
            out.append(item)
    return out


def _duration_ms(turns: Sequence[Turn]) -> int | None:
    """Last minus first timestamp in ms; None (unknown, not zero) when fewer than two turns carry one
    or their timestamps cannot be compared (naive and aware mixed)."""
    stamps = [t.ts for t in sorted(turns, key=lambda t: t.index) if t.ts is not None]
    if len(stamps) < 2:
        return None
    try:
        return max(0, int((stamps[-1] - stamps[0]).total_seconds() * 1000))
    except TypeError:
        return None

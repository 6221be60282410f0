"""The group summary dict (camelCase, the stored and published shape) built from per-skill outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coachup.assessment.types import CATEGORIES, RUBRIC_VERSION, Assessor, Turn

if TYPE_CHECKING:  # pragma: no cover
    from coachup.assessment.service import SkillOutcome

__all__ = ["build_summary", "MAX_HIGHLIGHTS", "MAX_RECOMMENDATIONS"]

MAX_HIGHLIGHTS = 3
MAX_RECOMMENDATIONS = 3


def build_summary(turns: Sequence[Turn], outcomes: Sequence[SkillOutcome], assessor: Assessor) -> dict[str, Any]:
    """The summary: category means over the skills that succeeded (3 decimals), per-skill results, at most
    3 highlights and recommendations, the assessed skill categories, usage meta and one error per failure."""
    done = [o for o in outcomes if o.result is not None]
    results = [o.result for o in done if o.result is not None]
    scores = {c: round(sum(r.scores[c] for r in results) / len(results), 3) if results else 0.0 for c in CATEGORIES}
    return {
        "rubricVersion": RUBRIC_VERSION,
        "scores": scores,
        "skillAssessments": [
            {
                "skillId": r.skill_id,
                "skillHash": r.skill_hash,
                "level": r.level,
                "scores": {c: round(r.scores[c], 3) for c in CATEGORIES},
                "metCriteria": list(r.met_criteria),
                "unmetCriteria": list(r.unmet_criteria),
                "feedback": r.feedback,
            }
            for r in results
        ],
        "highlights": _first_unique((h for r in results for h in r.highlights), MAX_HIGHLIGHTS),
        "recommendations": _first_unique((x for r in results for x in r.recommendations), MAX_RECOMMENDATIONS),
        "categories": _first_unique((o.skill.category for o in done), len(done)),
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
        },
        "errors": [
            {"skillId": o.skill.id, "skillHash": o.skill.skill_hash, "error": o.error}
            for o in outcomes
            if o.result is None
        ],
    }


def _first_unique(items, limit: int) -> list:
    out: list = []
    for item in items:
        if len(out) >= limit:
            break
        if item not in out:
            out.append(item)
    return out


def _duration_ms(turns: Sequence[Turn]) -> int:
    """Last minus first timestamp in ms (0 when fewer than two turns carry one, or they can't be compared)."""
    stamps = [t.ts for t in sorted(turns, key=lambda t: t.index) if t.ts is not None]
    if len(stamps) < 2:
        return 0
    try:
        return max(0, int((stamps[-1] - stamps[0]).total_seconds() * 1000))
    except TypeError:  # naive and aware datetimes mixed
        return 0

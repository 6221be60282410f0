"""A stored summary as the front end reads it: the per-skill items of CONTRACTS.md §1, filtered on request.

The skill page keeps the items whose `skill.id` is its skill and renders `level`, `metCriteria[]`,
`unmetCriteria[]` (sentences) and `feedback[]` (a list of strings). Summaries written in that shape pass
through unchanged. A summary stored before it (`skillId` only, criterion ids, one feedback string) is
completed here from the catalogue and the criteria library, so yesterday's results read like today's.
This only fills in what is missing; it never rewrites a field that is already in the contract's shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["present_summary", "only_skill", "needs_catalogue"]


def needs_catalogue(summary: dict | None) -> bool:
    """True when some item lacks the contract's `skill` object (then `present_summary` wants the catalogue)."""
    return summary is not None and any(not isinstance(i.get("skill"), dict) for i in _items(summary))


def present_summary(summary: dict | None, skills: Mapping[str, dict], criteria: Mapping[str, str]) -> dict | None:
    """`summary` with every item in the contract's shape; `skills`: id -> {title, category}; `criteria`: id -> text."""
    if not summary:
        return summary
    items = [_item(i, skills, criteria) for i in _items(summary)]
    return {**summary, "skillAssessments": items}


def only_skill(summary: dict | None, skill_id: str) -> dict | None:
    """`summary` keeping only the items of `skill_id` (`X-Tracked-Skill-Id`); the rest is untouched."""
    if not summary:
        return summary
    items = [i for i in _items(summary) if (i.get("skill") or {}).get("id") == skill_id]
    return {**summary, "skillAssessments": items}


def _items(summary: dict) -> list[dict]:
    return [i for i in summary.get("skillAssessments") or [] if isinstance(i, dict)]


def _item(item: dict, skills: Mapping[str, dict], criteria: Mapping[str, str]) -> dict:
    out = dict(item)
    if not isinstance(item.get("skill"), dict):
        skill_id = item.get("skillId")
        known = skills.get(skill_id) or {} if isinstance(skill_id, str) else {}
        out["skill"] = {"id": skill_id, "name": known.get("title") or skill_id, "category": known.get("category")}
    out.setdefault("skillId", out["skill"].get("id"))
    for key in ("metCriteria", "unmetCriteria"):
        out[key] = [criteria.get(c, c) if isinstance(c, str) else c for c in item.get(key) or []]
    feedback: Any = item.get("feedback")
    if isinstance(feedback, str):
        out["feedback"] = [feedback] if feedback.strip() else []
    elif feedback is None:
        out["feedback"] = []
    return out

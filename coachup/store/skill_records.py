"""Catalogue records and assessment skills: the one door between the `skills` table and the assessor.

A catalogue record is `{"id", "title", "category", "description", "criteria": [criterion ids]}`
(CONTRACTS.md §3). `parse_record` checks its shape; `skill_from_record` builds the assessor's `Skill`,
choosing criteria from the library of checkable criteria (an unknown criterion id is a `ValidationFailed`
naming it), so an operator can add a skill the offline assessor can judge, but not invent a criterion.
"""

from __future__ import annotations

import re
from typing import Any

from coachup.assessment.types import Skill
from coachup.errors import ValidationFailed

__all__ = ["parse_record", "skill_from_record", "criteria_library", "record_of", "SKILL_ID"]

SKILL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_MAX_CRITERIA = 20


def parse_record(raw: Any) -> dict:
    """A clean catalogue record from untrusted input (API body, CLI file); `ValidationFailed` says what is wrong."""
    if not isinstance(raw, dict):
        raise ValidationFailed("a skill must be an object")
    skill_id = raw.get("id")
    if not isinstance(skill_id, str) or not SKILL_ID.match(skill_id):
        raise ValidationFailed("id must be 1-64 of a-z, 0-9, _ or -, starting with a letter or digit")
    out: dict[str, Any] = {"id": skill_id}
    for name, limit in (("title", 200), ("category", 64), ("description", 2000)):
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise ValidationFailed(f"{skill_id}: {name} must be a non-empty string of at most {limit} characters")
        out[name] = value.strip()
    if not SKILL_ID.match(out["category"]):
        raise ValidationFailed(f"{skill_id}: category must be 1-64 of a-z, 0-9, _ or -")
    criteria = raw.get("criteria")
    if (
        not isinstance(criteria, list)
        or not 1 <= len(criteria) <= _MAX_CRITERIA
        or not all(isinstance(c, str) and c for c in criteria)
    ):
        raise ValidationFailed(f"{skill_id}: criteria must be a list of 1-{_MAX_CRITERIA} criterion ids")
    out["criteria"] = list(dict.fromkeys(criteria))
    return out


def skill_from_record(record: dict) -> Skill:
    """The assessor's `Skill` for a parsed record (raises `ValidationFailed` naming unknown criterion ids)."""
    from coachup.assessment.skills import skill_from_record as build

    return build(record)


def criteria_library() -> dict[str, str]:
    """Every criterion an operator may choose, id -> the sentence shown to the user."""
    from coachup.assessment.library import CRITERIA

    return {cid: c.text for cid, c in CRITERIA.items()}


def record_of(skill: Skill) -> dict:
    """The catalogue record of a `Skill` (the built-in seed, or what `skill_from_record` made)."""
    return {
        "id": skill.id,
        "title": skill.title,
        "category": skill.category,
        "description": skill.description,
        "criteria": [c.id for c in skill.criteria],
    }

"""Assessment domain: skills, rubric, the LangChain assessor and the group service. Pure core (no Flask, no Celery).

Importing this package loads only the stdlib value types and the skill catalogue; the LangChain-backed
parts (`build_assessor`, `assess_group`, ...) load on first attribute access.
"""

from __future__ import annotations

from importlib import import_module

from coachup.assessment.skills import CRITERIA, SKILLS, get_skill, resolve_skills, skill_from_record
from coachup.assessment.types import (
    CATEGORIES,
    RUBRIC_VERSION,
    Assessor,
    Criterion,
    CriterionVerdict,
    Skill,
    SkillResult,
    Turn,
)

__all__ = [
    "CATEGORIES",
    "RUBRIC_VERSION",
    "Turn",
    "Criterion",
    "CriterionVerdict",
    "Skill",
    "SkillResult",
    "Assessor",
    "SKILLS",
    "CRITERIA",
    "get_skill",
    "resolve_skills",
    "skill_from_record",
    "build_assessor",
    "assess_group",
    "SkillOutcome",
    "PROMPT_VERSION",
]

_LAZY = {
    "build_assessor": "coachup.assessment.providers",
    "assess_group": "coachup.assessment.service",
    "SkillOutcome": "coachup.assessment.service",
    "PROMPT_VERSION": "coachup.assessment.prompt",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

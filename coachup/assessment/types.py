"""Value types of the assessment domain: turns, skills, criteria, one skill's result, and the assessor seam.

Pure data, standard library only, so the API can validate skill ids without importing LangChain.
The scale story (docs/assessments.md): category scores are 0..1, a skill's level is 0..10 and follows
from its criteria (`level.level_from_criteria`), and the v2 callback's level is that same number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from coachup.errors import ValidationFailed

__all__ = [
    "CATEGORIES",
    "RUBRIC_VERSION",
    "ROLES",
    "SKILL_STATUSES",
    "SUMMARY_STATUSES",
    "MIN_USER_WORDS",
    "MIN_USER_TURNS",
    "Turn",
    "Criterion",
    "CriterionVerdict",
    "Skill",
    "SkillResult",
    "Assessor",
]

# The four rubric categories, each scored 0..1. Order is the order of every `scores` mapping we emit.
CATEGORIES: tuple[str, ...] = ("correctness", "clarity", "conciseness", "fluency")

# Bumped whenever a criterion, a category or the meaning of a score or level changes; part of every
# rubric hash. v2: levels on 0..10 from the met criteria, per-skill scores, evidence minimums.
RUBRIC_VERSION = "v2"

ROLES: tuple[str, ...] = ("user", "assistant", "system")
SKILL_STATUSES: tuple[str, ...] = ("assessed", "insufficient_evidence")
SUMMARY_STATUSES: tuple[str, ...] = ("assessed", "insufficient_evidence", "skipped")

# Below this much user speech a skill is "not enough speech to assess". At 15 words one filler or one
# slip already moves a per-100-words rate by 7 points, and averages over sentences rest on one or two
# sentences; below that a verdict would be noise dressed as a number ("0 filler words in 1 words").
MIN_USER_WORDS = 15
MIN_USER_TURNS = 1


@dataclass(frozen=True)
class Turn:
    """One transcript turn. `index` is its position in the session; `ts` when it was spoken (optional)."""

    index: int
    role: str
    content: str
    ts: datetime | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValidationFailed(f"turn role must be one of {', '.join(ROLES)}, got {self.role!r}")


@dataclass(frozen=True)
class Criterion:
    """One checkable statement of a rubric; `id` is stable and unique in the library.

    `category` is the rubric category it speaks to and `aspect` the feature of speech it is about
    (fillers, stutters, benefits, ...): together they name the scoring factor behind a skill's scores.
    """

    id: str
    text: str
    category: str = "clarity"
    aspect: str = ""


@dataclass(frozen=True)
class CriterionVerdict:
    """One criterion judged for one transcript: met, unmet, or None (not judged)."""

    id: str
    text: str
    met: bool | None


@dataclass(frozen=True)
class Skill:
    """A tracked skill: what it is and its criteria. What it scores follows from the criteria."""

    id: str
    title: str
    category: str
    description: str
    criteria: tuple[Criterion, ...]
    min_words: int = MIN_USER_WORDS
    min_turns: int = MIN_USER_TURNS

    @property
    def rubric_hash(self) -> str:
        """sha256 hex of (RUBRIC_VERSION, id, criteria): changes exactly when the rubric of this skill does."""
        payload = [RUBRIC_VERSION, self.id, [[c.id, c.text] for c in self.criteria]]
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    @property
    def skill_hash(self) -> str:
        """The rubric hash under its older name (the worker's log lines still call it `skillHash`)."""
        return self.rubric_hash

    @property
    def focus(self) -> tuple[str, ...]:
        """The rubric categories this skill scores: those its criteria speak to, in `CATEGORIES` order."""
        used = {c.category for c in self.criteria}
        return tuple(c for c in CATEGORIES if c in used)

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.criteria)


@dataclass
class SkillResult:
    """One skill's assessment.

    `level` is 0..10 (None when not assessed); `scores` are this skill's own 0..1 scores for its focus
    categories; `answer_scores` the assessor's 0..1 scores of the whole answer on all four categories
    (the group's `scores` average them). Tokens are counts, cost USD, latency ms.
    """

    skill_id: str
    rubric_hash: str
    status: str = "assessed"
    level: int | None = None
    scores: dict[str, float] | None = None
    answer_scores: dict[str, float] | None = None
    criteria: list[CriterionVerdict] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    highlights: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    message: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: int = 0

    @property
    def met_criteria(self) -> list[str]:
        """The texts of the met criteria, in rubric order."""
        return [c.text for c in self.criteria if c.met is True]

    @property
    def unmet_criteria(self) -> list[str]:
        return [c.text for c in self.criteria if c.met is False]


@runtime_checkable
class Assessor(Protocol):
    """Scores one skill over a group's turns. `provider` and `model` are bounded metric labels."""

    provider: str
    model: str

    def assess_skill(self, skill: Skill, turns: Sequence[Turn]) -> SkillResult:
        """Assess `skill` over the user turns of `turns`; raise a `coachup.errors.CoachupError` on failure."""
        ...

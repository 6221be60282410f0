"""Value types of the assessment domain: turns, skills, criteria, one skill's result, and the assessor seam.

Pure data, standard library only, so the API can validate skill ids without importing LangChain.
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
    "Turn",
    "Criterion",
    "Skill",
    "SkillResult",
    "Assessor",
]

# The four rubric categories, each scored 0..1. Order is the order of every `scores` mapping we emit.
CATEGORIES: tuple[str, ...] = ("correctness", "clarity", "conciseness", "fluency")

# Bumped whenever a criterion, a category or the meaning of a score changes; part of every skill hash.
RUBRIC_VERSION = "v1"

ROLES: tuple[str, ...] = ("user", "assistant", "system")


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
    """One checkable statement of a skill's rubric; `id` is stable and unique across the catalogue."""

    id: str
    text: str


@dataclass(frozen=True)
class Skill:
    """A tracked skill: what it is, which rubric categories it leans on (`focus`) and its criteria."""

    id: str
    title: str
    category: str
    description: str
    focus: tuple[str, ...]
    criteria: tuple[Criterion, ...]

    @property
    def skill_hash(self) -> str:
        """sha256 hex of (RUBRIC_VERSION, id, criteria): changes exactly when the rubric of this skill does."""
        payload = [RUBRIC_VERSION, self.id, [[c.id, c.text] for c in self.criteria]]
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.criteria)


@dataclass
class SkillResult:
    """One skill's assessment. Scores are 0..1 per category; tokens are counts; cost in USD; latency in ms."""

    skill_id: str
    skill_hash: str
    level: int
    scores: dict[str, float]
    met_criteria: list[str] = field(default_factory=list)
    unmet_criteria: list[str] = field(default_factory=list)
    feedback: str = ""
    highlights: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: int = 0


@runtime_checkable
class Assessor(Protocol):
    """Scores one skill over a group's turns. `provider` and `model` are bounded metric labels."""

    provider: str
    model: str

    def assess_skill(self, skill: Skill, turns: Sequence[Turn]) -> SkillResult:
        """Assess `skill` over the user turns of `turns`; raise a `coachup.errors.CoachupError` on failure."""
        ...

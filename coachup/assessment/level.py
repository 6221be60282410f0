"""A skill's level: one documented function of which of its criteria are met.

    level = floor(10 * met / judged + 1/2)        (0..10; round half up)

`judged` counts the criteria that got a verdict (met or unmet); `met` those that were met. No criterion
judged means no level. Every criterion weighs the same; "how strongly" a skill is shown is expressed by
tiered criteria in the rubric (fewer than 6 fillers per 100 words, then fewer than 2), so a stronger
performance meets more criteria. The same function serves every provider: a model only says which
criteria are met, never the level. The front end stores levels 0..10, so the v2 callback sends this
number unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from coachup.assessment.types import CriterionVerdict

__all__ = ["LEVEL_MAX", "level_from_criteria", "level_sentence"]

LEVEL_MAX = 10


def level_from_criteria(verdicts: Iterable[CriterionVerdict]) -> int | None:
    """The level for these verdicts (see the module docstring), or None when none was judged."""
    judged = [v for v in verdicts if v.met is not None]
    if not judged:
        return None
    met = sum(1 for v in judged if v.met)
    return (2 * LEVEL_MAX * met + len(judged)) // (2 * len(judged))  # exact round-half-up, no float


def level_sentence(title: str, level: int, verdicts: Iterable[CriterionVerdict]) -> str:
    """The first feedback line, stating the level and the criteria it follows from."""
    judged = [v for v in verdicts if v.met is not None]
    met = sum(1 for v in judged if v.met)
    return f"{title}: level {level}/{LEVEL_MAX}, {met} of {len(judged)} criteria met."

"""The JSON reply every assessor model must produce, as a pydantic schema (validated by the chain's parser).

A model judges each criterion (met or not) and scores; it never sets the level, which the chain computes
from the criteria (`level.level_from_criteria`). A `level` field in a reply is ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CategoryScores", "CriterionJudgement", "AssessmentReply"]

Score = Annotated[float, Field(ge=0, le=1)]


class CategoryScores(BaseModel):
    """The four rubric categories of the whole answer, each from 0 (poor) to 1 (excellent)."""

    model_config = ConfigDict(extra="ignore")

    correctness: Score = Field(description="Grammar and accuracy of what is said.")
    clarity: Score = Field(description="How easily a listener follows.")
    conciseness: Score = Field(description="Meaning per word: no padding or repetition.")
    fluency: Score = Field(description="Smooth delivery: no fillers, stutters or hesitation.")


class CriterionJudgement(BaseModel):
    """One criterion of the skill, judged."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="The criterion id as listed in the instructions.")
    met: bool = Field(description="true when the transcript meets the criterion.")


def _lines(value: Any) -> Any:
    """A single string where a list of strings belongs becomes a one-item list."""
    return [value] if isinstance(value, str) else value


class AssessmentReply(BaseModel):
    """One skill's assessment of the transcript."""

    model_config = ConfigDict(extra="ignore")

    skill_id: str = Field(description="The skill_id given in the instructions.")
    criteria: list[CriterionJudgement] = Field(description="One judgement per criterion id of the skill.")
    scores: CategoryScores
    skill_scores: dict[str, Score] = Field(
        default_factory=dict,
        description="This skill's own score (0..1) for each focus category, judged only on the skill's aspects.",
    )
    feedback: list[str] = Field(default_factory=list, max_length=10, description="One to three short sentences.")
    highlights: list[str] = Field(default_factory=list, max_length=10, description="What went well.")
    recommendations: list[str] = Field(default_factory=list, max_length=10, description="What to do next.")

    _as_lists = field_validator("feedback", "highlights", "recommendations", mode="before")(_lines)

    @field_validator("feedback", "highlights", "recommendations")
    @classmethod
    def _bounded(cls, value: list[str]) -> list[str]:
        if any(len(line) > 2000 for line in value):
            raise ValueError("a feedback line is longer than 2000 characters")
        return value

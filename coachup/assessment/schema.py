"""The JSON reply every assessor model must produce, as a pydantic schema (validated by the chain's parser)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CategoryScores", "AssessmentReply"]


class CategoryScores(BaseModel):
    """The four rubric categories, each from 0 (poor) to 1 (excellent)."""

    model_config = ConfigDict(extra="ignore")

    correctness: float = Field(ge=0, le=1, description="Grammar and accuracy of what is said.")
    clarity: float = Field(ge=0, le=1, description="How easily a listener follows.")
    conciseness: float = Field(ge=0, le=1, description="Meaning per word: no padding or repetition.")
    fluency: float = Field(ge=0, le=1, description="Smooth delivery: no fillers, stutters or hesitation.")


class AssessmentReply(BaseModel):
    """One skill's assessment of the transcript."""

    model_config = ConfigDict(extra="ignore")

    skill_id: str = Field(description="The skill_id given in the instructions.")
    level: int = Field(ge=1, le=5, description="Skill level from 1 (beginner) to 5 (excellent).")
    scores: CategoryScores
    met_criteria: list[str] = Field(default_factory=list, description="Ids of the criteria the answer meets.")
    unmet_criteria: list[str] = Field(default_factory=list, description="Ids of the criteria it does not meet.")
    feedback: str = Field(max_length=2000, description="Two or three sentences for the speaker, citing counts.")
    highlights: list[str] = Field(default_factory=list, max_length=10, description="What went well.")
    recommendations: list[str] = Field(default_factory=list, max_length=10, description="What to do next.")

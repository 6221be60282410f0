"""How much the user said, and whether it is enough to assess a skill (the documented evidence minimum).

Below a skill's minimum (`Skill.min_words` user words, default `MIN_USER_WORDS`; `Skill.min_turns` user
turns) the skill is reported as "not enough speech to assess": no level, no scores, a message. A group
with no user words at all is skipped outright.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coachup.assessment.features import count_words
from coachup.assessment.types import Skill, Turn

__all__ = ["Evidence", "measure_evidence", "shortfall", "NO_SPEECH_MESSAGE"]

NO_SPEECH_MESSAGE = "No user speech in this interaction to assess."


@dataclass(frozen=True)
class Evidence:
    """User words and user turns (non-empty) in a group."""

    user_words: int
    user_turns: int

    def as_dict(self) -> dict[str, int]:
        return {"userWords": self.user_words, "userTurns": self.user_turns}


def measure_evidence(turns: Sequence[Turn]) -> Evidence:
    """Count the user's words (as the features count them) and non-empty user turns."""
    counts = [count_words(t.content) for t in turns if t.role == "user"]
    return Evidence(sum(counts), sum(1 for n in counts if n))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def shortfall(skill: Skill, evidence: Evidence) -> str | None:
    """Why `evidence` is not enough to assess `skill` (a message for the speaker), or None when it is."""
    if evidence.user_words == 0:
        return NO_SPEECH_MESSAGE
    if evidence.user_words < skill.min_words:
        return f"Not enough speech to assess ({_n(evidence.user_words, 'word')}; {skill.min_words} needed)."
    if evidence.user_turns < skill.min_turns:
        return f"Not enough speech to assess ({_n(evidence.user_turns, 'turn')}; {skill.min_turns} needed)."
    return None

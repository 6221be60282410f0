"""When does an interaction group end? The front end never says, so the API decides.

A deterministic closing-cue classifier (phrases a speaker uses to wrap up) sits behind `ClosingCue`;
an LLM classifier could sit behind the same seam. The other rules (max turns, idle timeout, an explicit
`end: true`) live in the store and the scheduler.
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = ["ClosingCue", "PhraseClosingCue", "CLOSING_PHRASES"]

CLOSING_PHRASES = (
    "good luck",
    "talk soon",
    "talk to you soon",
    "talk later",
    "that's all for today",
    "that is all for today",
    "that's it for today",
    "that's all for now",
    "see you next time",
    "see you soon",
    "see you later",
    "goodbye",
    "good bye",
    "bye for now",
    "have a good day",
    "have a great day",
    "thanks for the session",
    "thank you for the session",
    "let's wrap up",
    "let's end here",
    "we're done for today",
    "until next time",
)


class ClosingCue(Protocol):
    def is_closing(self, text: str) -> bool:
        """True when `text` ends the interaction."""


class PhraseClosingCue:
    """Matches closing phrases as whole words, ignoring case, curly quotes and punctuation."""

    def __init__(self, phrases: tuple[str, ...] = CLOSING_PHRASES) -> None:
        alternatives = "|".join(re.escape(p).replace("'", "'?") for p in phrases)
        self._pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)

    def is_closing(self, text: str) -> bool:
        normalized = text.replace("\u2019", "'").replace("\u2018", "'")
        return bool(self._pattern.search(normalized))

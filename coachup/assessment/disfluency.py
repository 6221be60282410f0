"""Marks of stuttering that word counts miss: part-word repetitions, prolonged sounds, long pauses.

A transcript writes them as "b-b-but", "wh-what", "I-I-I", "sssso" and "..." (speech-to-text and
hand transcription alike). `collapse` counts them and rewrites each to the word the speaker reached, so
the other features see "but", "what", "I", "so" and are not thrown by the fragments.
"""

from __future__ import annotations

import re

__all__ = ["Marks", "collapse"]

# "b-b-but", "wh-what", "I-I-I": hyphen-joined fragments, each a prefix of the word that ends the run
_RUN = re.compile(r"(?<![\w'-])((?:[a-z]{1,4}-)+)([a-z]+(?:'[a-z]+)?)(?![\w-])", re.IGNORECASE)
# "sssso", "mmmaybe", "aaand": a first letter held for three or more
_PROLONGED = re.compile(r"(?<![\w'])([a-z])\1{2,}([a-z]+)", re.IGNORECASE)
_LONG_PAUSE = re.compile(r"\.{3,}|\u2026")
_LEGIT_DOUBLES = frozenset({"so-so", "bye-bye", "hush-hush", "night-night", "knock-knock", "tut-tut"})


class Marks:
    """Counts from one turn: `sound_repeats` (part-word repetitions and prolongations), `long_pauses`."""

    __slots__ = ("sound_repeats", "long_pauses")

    def __init__(self) -> None:
        self.sound_repeats = 0
        self.long_pauses = 0


def collapse(text: str, marks: Marks) -> str:
    """`text` with each stutter mark rewritten to its target word; adds what it found to `marks`."""
    marks.long_pauses += len(_LONG_PAUSE.findall(text))

    def run(match: re.Match[str]) -> str:
        fragments = [p for p in match.group(1).lower().split("-") if p]
        word = match.group(2)
        if match.group(0).lower() in _LEGIT_DOUBLES:
            return match.group(0).replace("-", "")  # "so-so" is one word: not a stutter, nor a repeated "so"
        if not all(word.lower().startswith(p) for p in fragments):
            return match.group(0)  # "follow-up", "e-mail": a hyphenated word, not a stutter
        marks.sound_repeats += 1
        return word

    def held(match: re.Match[str]) -> str:
        marks.sound_repeats += 1
        return match.group(1) + match.group(2)

    return _PROLONGED.sub(held, _RUN.sub(run, text))

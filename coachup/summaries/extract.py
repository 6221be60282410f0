"""The offline summariser: a faithful, short, rolling summary of what was said.

Faithful by construction: every point is a sentence somebody said, verbatim (whitespace normalised), with who
said it. It keeps the sentences that carry the session: the learner's goals and worries, the coach's concrete
advice, specifics (numbers, names), and drops greetings and one-word turns. Rolling: the previous summary's
points come first and the oldest are dropped first when the token budget (~4 characters a token) is reached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["HEADER", "summarise_extractive", "points_of", "MIN_WORDS"]

HEADER = "Summary so far:"
MIN_WORDS = 4  # shorter sentences ("Hi there.", "Okay, thanks!") carry nothing a summary needs
_SPEAKERS = {"user": "User", "assistant": "Coach"}
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_POINT = re.compile(r"^- (User|Coach|Earlier): (.+)$")
_GOAL = re.compile(
    r"\b(i want|i'd like|i would like|my goal|goal is|i need|i'm trying|i am trying|i plan|i'm preparing|"
    r"i am preparing|i struggle|i get nervous|i'm nervous|i am nervous|help me|my (?:presentation|interview|talk|"
    r"pitch|meeting))\b",
    re.I,
)
_ADVICE = re.compile(
    r"\b(try|practi[cs]e|focus|remember|aim|start with|pause|slow down|next time|instead|say it|keep)\b", re.I
)


def _score(role: str, sentence: str) -> int:
    words = len(_WORD.findall(sentence))
    score = 1 if role == "user" else 0
    if _GOAL.search(sentence):
        score += 3
    if role == "assistant" and _ADVICE.search(sentence):
        score += 3
    if any(ch.isdigit() for ch in sentence):
        score += 1
    if 6 <= words <= 30:
        score += 1
    if role == "user" and sentence.endswith("?"):
        score += 1
    return score


def points_of(messages: Iterable[tuple[str, str]]) -> list[tuple[int, str]]:
    """(score, "- Speaker: sentence") of every sentence worth keeping, in the order they were said."""
    points = []
    for role, content in messages:
        speaker = _SPEAKERS.get(role)
        if speaker is None:
            continue
        for match in _SENTENCE.finditer(content):
            sentence = " ".join(match.group(0).split())
            if len(_WORD.findall(sentence)) >= MIN_WORDS:
                points.append((_score(role, sentence), f"- {speaker}: {sentence}"))
    return points


def _previous_points(prev: str) -> list[str]:
    lines = [line.strip() for line in prev.strip().splitlines() if line.strip() and line.strip() != HEADER]
    if lines and all(_POINT.match(line) for line in lines):
        return lines
    text = " ".join(prev.split())  # a summary from elsewhere (another provider, the front end): keep it whole
    return [f"- Earlier: {text}"] if text else []


def summarise_extractive(prev: str, messages: Iterable[tuple[str, str]], budget_tokens: int) -> str:
    """The updated summary, or "" when `messages` hold nothing worth summarising."""
    candidates = points_of(messages)
    if not candidates:
        return ""
    # keep the better half of what was said (at least two points), in the order it was said
    keep = max(2, (len(candidates) + 1) // 2)
    ranked = sorted(range(len(candidates)), key=lambda i: (-candidates[i][0], i))[:keep]
    new = [candidates[i][1] for i in sorted(ranked)]
    old = [p for p in _previous_points(prev) if p not in new]
    max_chars = max(200, budget_tokens * 4)
    while old and len("\n".join([HEADER, *old, *new])) > max_chars:
        old.pop(0)  # the oldest earlier point goes first
    while len(new) > 1 and len("\n".join([HEADER, *new])) > max_chars:
        scores = {p: s for s, p in candidates}
        new.remove(min(new, key=lambda p: scores.get(p, 0)))  # then the weakest new point
    text = "\n".join([HEADER, *old, *new])
    return text[:max_chars]

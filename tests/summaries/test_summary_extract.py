"""The offline summariser is faithful (every point is a sentence someone said, with who said it), short
(within its token budget, shorter than what it summarises) and rolling (earlier points kept, oldest dropped
first). Measured on the calibration transcripts of `tests/assessment/data` plus a coaching dialogue."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from coachup.summaries import HEADER, summarise_extractive
from coachup.summaries.extract import MIN_WORDS

DATA = Path(__file__).resolve().parents[1] / "assessment" / "data" / "assessment-calibration.jsonl"
DIALOGUE = [
    ("user", "Hello!"),
    ("assistant", "Hi, what shall we practise today?"),
    ("user", "I want to pitch our scheduling app to two investors on Thursday. I get nervous about the numbers."),
    ("assistant", "Try opening with your strongest number, then pause for two seconds. Keep each sentence short."),
    ("user", "We have 4,000 paying teams and churn under three percent."),
    ("assistant", "Good. Say it again, slower."),
]


def _conversations() -> list[list[tuple[str, str]]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return [[(t["role"], t["content"]) for t in row["turns"]] for row in rows] + [DIALOGUE]


def _said(messages) -> set[str]:
    speakers = {"user": "User", "assistant": "Coach"}
    out = set()
    for role, content in messages:
        for sentence in re.findall(r"[^.!?\n]+(?:[.!?]+|$)", content):
            out.add(f"{speakers[role]}: {' '.join(sentence.split())}")
    return out


@pytest.mark.parametrize("index", range(len(_conversations())))
def test_every_point_is_a_sentence_that_was_said_by_who_said_it(index):
    messages = _conversations()[index]
    summary = summarise_extractive("", messages, budget_tokens=600)
    said = _said(messages)
    if all(len(s.split()) - 1 < MIN_WORDS for s in said):  # "Yes." "No." "Maybe.": nothing to summarise
        assert summary == ""
        return
    lines = summary.splitlines()
    assert lines[0] == HEADER and len(lines) >= 2
    for line in lines[1:]:
        assert line.startswith("- ") and line[2:] in said, line


def test_short_and_within_budget_and_keeps_what_matters():
    summary = summarise_extractive("", DIALOGUE, budget_tokens=100)
    assert len(summary) <= 400 and len(summary) < sum(len(c) for _, c in DIALOGUE)
    assert "I want to pitch our scheduling app to two investors on Thursday." in summary  # the goal
    assert "Try opening with your strongest number" in summary  # the coach's advice
    assert "Hello!" not in summary and "Good." not in summary  # nothing under MIN_WORDS words
    assert all(len(line.split()) - 2 >= MIN_WORDS for line in summary.splitlines()[1:])


def test_rolling_keeps_earlier_points_and_drops_the_oldest_first():
    first = summarise_extractive("", DIALOGUE[:4], budget_tokens=600)
    later = [("user", "My second meeting is with a bank next month and I need a shorter pitch.")]
    second = summarise_extractive(first, later, budget_tokens=600)
    assert first.splitlines()[1] in second and second.splitlines()[-1].endswith("a shorter pitch.")
    tight = summarise_extractive(first, later, budget_tokens=50)
    assert first.splitlines()[1] not in tight and tight.splitlines()[-1].endswith("a shorter pitch.")


def test_nothing_worth_summarising_gives_empty_text():
    assert summarise_extractive("Summary so far:\n- User: I want to speak well.", [("user", "ok")], 600) == ""
    assert summarise_extractive("", [("system", "You are a coach with a long system prompt.")], 600) == ""

"""The closing-cue classifier: precision/recall on the labelled turns, on held-out sentences, and its rules.

`data/closing-cues.jsonl` is a copy of shared/data/closing-cues.jsonl. `data/closing-cues-heldout.jsonl`
holds new sentences of the same kinds, written for this test in batches: `h` before the classifier
existed; `j`, `m`, `n` and `p` each after the previous round, each measured once on first run. After `j`,
`m` and `n` the phrase lists were extended with the general forms they exposed (never their sentences);
`p` was not tuned on. First-run figures (precision / recall): h 1.0 / 1.0, j 0.929 / 0.765,
m 0.889 / 0.615, n 0.909 / 0.714, p 0.917 / 0.846. None of them is encoded in the classifier; the test
prints the current figures.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coachup.interaction import MAX_CODA_WORDS, ClosingClassifier, ClosingCue, PhraseClosingCue

DATA = Path(__file__).parent / "data"
MIN_PRECISION, MIN_RECALL = 0.95, 0.9  # issue 18, on closing-cues.jsonl
HELD_OUT_MIN_PRECISION, HELD_OUT_MIN_RECALL = 0.9, 0.85  # new sentences: a floor under what was measured

CLASSIFIER = ClosingClassifier()


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def _precision_recall(rows: list[dict]) -> tuple[float, float, list[str]]:
    tp = fp = fn = 0
    wrong = []
    for row in rows:
        predicted = CLASSIFIER.is_closing(row["content"], role=row["role"])
        tp += predicted and row["ends"]
        fp += predicted and not row["ends"]
        fn += row["ends"] and not predicted
        if predicted != row["ends"]:
            wrong.append(row["id"])
    precision = tp / (tp + fp) if tp + fp else 1.0
    return precision, tp / (tp + fn), wrong


def test_precision_and_recall_on_the_labelled_turns():
    # Given the labelled turns (mostly hard cases)
    rows = _rows("closing-cues.jsonl")
    assert len(rows) >= 20 and any(r["ends"] for r in rows) and not all(r["ends"] for r in rows)
    # When the classifier judges each one
    precision, recall, wrong = _precision_recall(rows)
    print(f"\nclosing-cues.jsonl ({len(rows)} turns): precision {precision:.3f}, recall {recall:.3f}, wrong {wrong}")
    # Then it meets the bar
    assert precision >= MIN_PRECISION and recall >= MIN_RECALL, wrong


def test_precision_and_recall_on_held_out_sentences():
    rows = _rows("closing-cues-heldout.jsonl")
    figures = {}
    for batch in sorted({r["id"][0] for r in rows}):
        subset = [r for r in rows if r["id"][0] == batch]
        figures[batch] = _precision_recall(subset)
        precision, recall, wrong = figures[batch]
        print(
            f"\nheld-out batch {batch} ({len(subset)} turns): precision {precision:.3f}, recall {recall:.3f}, {wrong}"
        )
    precision, recall, wrong = _precision_recall(rows)
    print(f"held-out, all {len(rows)} turns: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= HELD_OUT_MIN_PRECISION and recall >= HELD_OUT_MIN_RECALL, wrong


def test_the_seam_takes_the_role_and_the_app_name_is_the_classifier():
    assert isinstance(CLASSIFIER, ClosingCue)
    role = inspect.signature(ClosingClassifier.is_closing).parameters["role"]
    assert role.kind is inspect.Parameter.KEYWORD_ONLY and role.default is inspect.Parameter.empty
    assert PhraseClosingCue is ClosingClassifier


@pytest.mark.parametrize(
    ("role", "text", "reason"),
    [
        ("system", "Goodbye.", "system_turn"),
        ("user", "   ", "empty"),
        ("assistant", "Great effort. Bye for now, any last thoughts?", "question"),
        ("assistant", "Thanks, that was useful", "no_signal"),
        ("assistant", "Hello and welcome! Best of luck with the exam.", "greeting"),
        ("assistant", "Good luck! Now, walk me through your second slide please.", "continues"),
        ("user", "Okay thanks, bye", "closing"),
    ],
)
def test_each_rule_gives_its_reason(role, text, reason):
    verdict = CLASSIFIER.judge(text, role=role)
    assert verdict.reason == reason and verdict.closing == (reason == "closing")


@pytest.mark.parametrize(
    ("text", "closing"),
    [
        ("I told her goodbye and left.", False),  # reported
        ("Goodbye sounds cold in an email.", False),  # the farewell is the subject
        ("We threw a goodbye party for Ann.", False),  # a noun modifier
        ("We're not done for today.", False),  # negated
        ("I'm done for today.", True),
        ("I just wanted to say thanks and goodbye.", True),  # the speaker's own performative frame
        ('My coach wrote "see you soon" on the card.', False),  # quoted
        ("Hi! Sorry, I have to go now. Bye!", True),  # a greeting, then explicit leave-taking
    ],
)
def test_where_the_phrase_stands_decides(text, closing):
    assert CLASSIFIER.is_closing(text, role="user") is closing


def test_a_long_tail_after_the_farewell_means_the_speaker_moved_on():
    tail = " ".join(["we"] + ["really"] * MAX_CODA_WORDS + ["enjoyed", "it"])
    assert CLASSIFIER.is_closing("Good luck.", role="assistant")
    assert not CLASSIFIER.is_closing(f"Good luck, {tail}.", role="assistant")


_CLOSINGS = st.sampled_from([r["content"] for r in _rows("closing-cues.jsonl") if r["ends"]])
_QUESTIONS = st.sampled_from(["What do you think?", "Shall we try the opening again?", "Any questions?"])


@settings(max_examples=60, deadline=None)
@given(_CLOSINGS, _QUESTIONS, st.sampled_from(["user", "assistant"]))
def test_a_closing_turn_that_ends_on_a_question_does_not_close(closing, question, role):
    # Given a turn that closes on its own / When a question follows it / Then the turn no longer closes
    assert CLASSIFIER.is_closing(closing, role=role)
    assert not CLASSIFIER.is_closing(f"{closing} {question}", role=role)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_judged_deterministically_and_system_turns_never_close(text):
    assert CLASSIFIER.is_closing(text, role="user") == CLASSIFIER.is_closing(text, role="user")
    assert not CLASSIFIER.is_closing(text, role="system")

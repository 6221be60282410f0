"""When does an interaction group end? The front end never says, so the API decides, one turn at a time.

`ClosingCue` is the seam; `ClosingClassifier` is its deterministic, offline implementation (an LLM
classifier could sit behind the same seam, with this one as its fallback). It judges the whole turn in
context, not a substring:

1. A `system` turn never ends an interaction (it is configuration, not conversation).
2. Quoted passages are mentions: "Here is a closing line: 'Thanks, talk soon.'" quotes a farewell.
3. A turn whose last sentence is a question expects an answer, so the interaction goes on.
4. A closing phrase counts only where the speaker performs it: at the head of its clause ("Okay, thanks,
   bye"), not reported ("I said goodbye to ..."), not the subject of a sentence about it ("Good luck is not
   a strategy"), not a noun modifier ("our goodbye lunch"), not negated or put off ("not done yet").
5. A turn that opens with a greeting is an opening: wishing luck there ("Welcome back! Good luck today.")
   does not end it; only explicit leave-taking ("bye", "I have to go") would.
6. After the last closing phrase only a short coda may follow ("You did really well."): a question, a
   task ("try it once more"), a new topic or more than `MAX_CODA_WORDS` words mean the turn goes on.

The other rules (max turns, idle timeout, an explicit `end: true`) live in the store and the scheduler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from coachup import closing_patterns as cp

__all__ = ["ClosingCue", "ClosingClassifier", "ClosingVerdict", "PhraseClosingCue", "MAX_CODA_WORDS"]

MAX_CODA_WORDS = 12  # words after the last closing phrase; a longer tail means the speaker moved on

_QUOTED = re.compile(r"\"[^\"]*\"|(?<![a-z0-9])'[^']*'(?![a-z0-9])")
_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+|$)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_BOUNDARY = re.compile(r"[.!?,;:]|\bquote\b")
_SPOKEN = re.compile(r"\b(?:" + "|".join(map(re.escape, cp.SPOKEN_FORMS)) + r")\b")
_NEGATORS = frozenset({"not", "don't", "never", "no", "isn't", "won't", "can't", "aren't", "didn't", "wasn't"})


@runtime_checkable
class ClosingCue(Protocol):
    """Decides whether one ingested turn ends its interaction."""

    def is_closing(self, text: str, *, role: str) -> bool:
        """True when `text`, said by `role` ("user" | "assistant" | "system"), ends the interaction."""
        ...


@dataclass(frozen=True)
class ClosingVerdict:
    """The decision and its reason: closing, system_turn, empty, question, no_signal, greeting, continues."""

    closing: bool
    reason: str


@dataclass(frozen=True)
class _Signal:
    kind: str
    start: int
    end: int


class ClosingClassifier:
    """The offline closing classifier (see the module docstring for its rules). Stateless and thread-safe."""

    def is_closing(self, text: str, *, role: str) -> bool:
        return self.judge(text, role=role).closing

    def judge(self, text: str, *, role: str) -> ClosingVerdict:
        """The verdict with its reason (a bounded word, safe for logs)."""
        if role == "system":
            return ClosingVerdict(False, "system_turn")
        turn = _normalise(text)
        sentences = [s.strip() for s in _SENTENCE.findall(turn) if _WORD.search(s)]
        if not sentences:
            return ClosingVerdict(False, "empty")
        if _is_question(sentences[-1]):
            return ClosingVerdict(False, "question")
        signals = [s for s in _signals(turn) if _performed(turn, s)]
        if not signals:
            return ClosingVerdict(False, "no_signal")
        if cp.GREETING.match(turn) and not any(s.kind in cp.EXPLICIT_KINDS for s in signals):
            return ClosingVerdict(False, "greeting")
        if _continues(turn[max(s.end for s in signals) :]):
            return ClosingVerdict(False, "continues")
        return ClosingVerdict(True, "closing")


# The name the app factory imports; the phrase matcher it once named is gone (it closed groups on
# "I said goodbye to ..."). Kept so web/app.py needs no change in this branch.
PhraseClosingCue = ClosingClassifier


def _normalise(text: str) -> str:
    lowered = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    lowered = _QUOTED.sub(" quote ", " ".join(lowered.lower().split()))
    # speech-to-text often drops apostrophes ("im gonna go"): restore the forms the phrase lists use
    return _SPOKEN.sub(lambda m: cp.SPOKEN_FORMS[m.group(0)], lowered)


def _is_question(sentence: str) -> bool:
    if sentence.rstrip().endswith("?"):
        return True
    # spoken transcripts often lose the question mark: "what should we practise first"
    return not sentence.rstrip().endswith((".", "!")) and bool(cp.INTERROGATIVE_START.match(sentence))


def _signals(turn: str) -> list[_Signal]:
    found = [
        _Signal(kind, m.start(), m.end())
        for kind, patterns in cp.SIGNALS.items()
        for pattern in patterns
        for m in pattern.finditer(turn)
    ]
    return sorted(found, key=lambda s: (s.start, -s.end))


def _performed(turn: str, signal: _Signal) -> bool:
    """Is the speaker doing what the phrase says, here? (rule 4 of the module docstring)"""
    before = _clause_before(turn, signal.start)
    after = _WORD.findall(turn[signal.end :])[:1]
    if after and (after[0] in cp.SUBJECT_FOLLOWERS or after[0] in cp.NOUN_FOLLOWERS or after[0] == "yet"):
        return False
    if not before:
        return True
    if any(w in _NEGATORS for w in before):
        return False
    if all(w in cp.CLAUSE_HEAD_WORDS for w in before):
        return not _reported(before)
    # "Thanks for the help and see you soon": a fresh clause after a coordinator, unless a reporting
    # verb governs both ("I said thanks and goodbye", "... and wished the new hire good luck").
    cut = max((i for i, w in enumerate(before) if w in cp.COORDINATORS), default=None)
    if cut is None:
        return False
    head, rest = before[:cut], before[cut + 1 :]
    return all(w in cp.CLAUSE_HEAD_WORDS for w in rest) and not _reported(head) and not _reported(rest)


def _clause_before(turn: str, start: int) -> list[str]:
    """The words between the last clause boundary (punctuation or a quote) and `start`."""
    prefix = turn[:start]
    boundaries = list(_BOUNDARY.finditer(prefix))
    clause = prefix[boundaries[-1].end() :] if boundaries else prefix
    return _WORD.findall(clause)


def _reported(words: list[str]) -> bool:
    """A reporting verb in `words` that is not the speaker's own performative frame ("I wanted to say")."""
    for i, word in enumerate(words):
        if word not in cp.REPORTING_VERBS:
            continue
        frame = words[max(0, i - 3) : i]
        performative = word in ("say", "wish", "wishing") and (
            {"want", "wanted", "like", "let"} & set(frame) or (frame[-1:] in (["i"], ["we"]) and word == "wish")
        )
        if word == "wishing" and i == 0:
            performative = True
        if not performative:
            return True
    return False


def _continues(tail: str) -> bool:
    """Does the text after the last closing phrase carry the conversation on? (rule 6)"""
    if len(_WORD.findall(tail)) > MAX_CODA_WORDS:
        return True
    if any(p.search(tail) for p in cp.CONTINUATION):
        return True
    return bool(cp.OPEN_LET_US.search(tail)) and not cp.LATER.search(tail)

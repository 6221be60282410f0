"""The offline coach's reply: built from what the learner just said, deterministic, with no model weights.

It reacts to the topic (the learner's most salient words), gives one concrete tip about how it was said
(filler words, very long sentences, hedging, or a too-short answer), ties it to a stated goal, and asks a
question that keeps the learner talking. A learner who says goodbye gets a closing line ending in
"Good luck!", the closing cue the interaction tracker recognises.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["CoachTurn", "coach_reply", "speech_notes"]

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
FILLERS = ("um", "uh", "erm", "er", "uhm", "hmm", "you know", "i mean", "basically", "literally")
HEDGES = ("i think", "i guess", "maybe", "kind of", "sort of", "probably", "i feel like")
GOODBYES = ("bye", "goodbye", "that's all", "that is all", "i'm done", "i am done", "see you", "talk soon", "gotta go")
LONG_SENTENCE_WORDS = 25
SHORT_ANSWER_WORDS = 6
_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
    now of off on once only or other our ours out over own same she should so some such than that the their theirs
    them then there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself really thing things going want wanted think guess
    maybe kind sort like know mean basically literally actually today something someone get got lot lots okay
    yeah yes well hello thanks thank please""".split()
)
_QUESTIONS = (
    "What is the one thing you want your listener to remember?",
    "Can you say that again in two sentences?",
    "What example could make it concrete for your listener?",
    "How would you open that for an audience who has never heard of it?",
)


@dataclass(frozen=True)
class CoachTurn:
    """What the coach needs: the new message, the learner's earlier messages, and their goals."""

    text: str
    earlier_user_turns: int = 0
    goals: tuple[str, ...] = ()


def _count_phrases(text: str, phrases: tuple[str, ...]) -> Counter:
    lowered = " " + re.sub(r"[^a-z' ]+", " ", text.lower()) + " "
    found: Counter = Counter()
    for phrase in phrases:
        n = lowered.count(f" {phrase} ")
        if n:
            found[phrase] = n
    return found


def speech_notes(text: str) -> dict:
    """Counts the tip is chosen from: fillers, hedges, words, the longest sentence (in words)."""
    sentences = [s for s in (m.group(0).strip() for m in _SENTENCE.finditer(text)) if s]
    lengths = [len(_WORD.findall(s)) for s in sentences] or [0]
    return {
        "fillers": _count_phrases(text, FILLERS),
        "hedges": _count_phrases(text, HEDGES),
        "words": len(_WORD.findall(text)),
        "longest": max(lengths),
        "sentences": sentences,
    }


def _topic(text: str) -> list[str]:
    words = [w.lower().strip("'-") for w in _WORD.findall(text)]
    content = [w for w in words if len(w) > 3 and w not in _STOP]
    counts = Counter(content)
    first = {w: i for i, w in reversed(list(enumerate(content)))}
    ranked = sorted(counts, key=lambda w: (-counts[w], -len(w), first[w]))
    return sorted(ranked[:2], key=lambda w: first[w])


def _without_hedges(sentence: str) -> str:
    out = sentence
    for hedge in HEDGES:
        out = re.sub(rf"(?i)\b{re.escape(hedge)}\b,?\s*", "", out)
    out = re.sub(r"\s{2,}", " ", out).strip(" ,")
    return out[:1].upper() + out[1:] if out else out


def _tip(notes: dict) -> str:
    fillers, hedges = notes["fillers"], notes["hedges"]
    if fillers:
        n = sum(fillers.values())
        names = ", ".join(f'"{f}"' for f in sorted(fillers, key=lambda f: (-fillers[f], f))[:2])
        return f"I heard {n} filler word{'s' if n > 1 else ''} ({names}); next time, pause silently instead."
    if notes["longest"] > LONG_SENTENCE_WORDS:
        return (
            f"Your longest sentence ran {notes['longest']} words; try stating your main point in under 15 words "
            "before you add detail."
        )
    if hedges:
        hedge = sorted(hedges, key=lambda h: (-hedges[h], h))[0]
        hedged = next((s for s in notes["sentences"] if hedge in s.lower()), notes["sentences"][0])
        direct = _without_hedges(hedged)
        if direct and direct.lower() != hedged.lower():
            return f'"{hedge.capitalize()}" softens your point; say it directly: "{direct}"'
        return f'"{hedge.capitalize()}" softens your point; say it directly.'
    if notes["words"] < SHORT_ANSWER_WORDS:
        return "That was brief; add one concrete example so your listener can picture it."
    return "That was clear and well paced; keep that rhythm."


def coach_reply(turn: CoachTurn) -> str:
    """The coach's whole reply to `turn` (plain text, two to four sentences)."""
    text = turn.text.strip()
    lowered = f" {re.sub(r'[^a-z ]+', ' ', text.lower().replace(chr(8217), ''))} "
    topic = _topic(text)
    about = " and ".join(topic) if topic else "that"
    if any(f" {g.replace(chr(39), '')} " in lowered for g in GOODBYES):
        return f"Thanks for practising with me today; you did real work on {about}. Good luck!"
    notes = speech_notes(text)
    opening = f"Good question about {about}." if text.endswith("?") else f"Thanks, I hear you on {about}."
    parts = [opening, _tip(notes)]
    if turn.goals:
        parts.append(f"That ties into your goal: {turn.goals[turn.earlier_user_turns % len(turn.goals)]}.")
    parts.append(_QUESTIONS[turn.earlier_user_turns % len(_QUESTIONS)])
    return " ".join(parts)

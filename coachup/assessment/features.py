"""Explainable text features of a spoken answer, computed from the user's turns. Pure, deterministic, stdlib.

Every feature is a count or a simple ratio a coach can verify by hand. Sentences are split on `.`, `!`,
`?` and on turn boundaries; words are letters/digits with an optional apostrophe part ("doesn't").
Stutter marks ("b-b-but", "sssso", "...") are counted first and rewritten to the word reached
(`disfluency.collapse`), so the fragments are not words of their own.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from coachup.assessment import lexicon as lx
from coachup.assessment import rhetoric as rh
from coachup.assessment.disfluency import Marks, collapse
from coachup.assessment.fillers import filler_positions, is_number
from coachup.assessment.grammar import grammar_errors

__all__ = [
    "Features",
    "extract_features",
    "split_sentences",
    "count_words",
    "MATTR_WINDOW",
    "RUN_ON_WORDS",
    "FRAGMENT_WORDS",
]

MATTR_WINDOW = 20  # words; moving-average type-token ratio window, so the ratio does not fall with length alone
RUN_ON_WORDS = 30  # a sentence longer than this is a run-on
FRAGMENT_WORDS = 3  # a sentence shorter than this (fillers excluded) is a fragment

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[,;:]")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_PUNCT = re.compile(r"[,;:.!?\u2014]|\s-\s")  # a spaced dash is a pause; "follow-up" is not
_LOWER_I = re.compile(r"(?<![\w'.])i(?:'[a-z]+)?(?![\w']|\.e\.)")  # "i went", not "i.e."


@dataclass(frozen=True)
class Features:
    """Counts and ratios over the user's words. Rates elsewhere are per word; lengths are in words."""

    words: int = 0
    turns: int = 0
    sentences: int = 0
    mean_sentence_words: float = 0.0
    max_sentence_words: int = 0
    run_on_sentences: int = 0
    run_on_excess_words: int = 0
    fragments: int = 0
    fillers: int = 0
    filler_counts: dict[str, int] = field(default_factory=dict)
    hedges: int = 0
    hedge_counts: dict[str, int] = field(default_factory=dict)
    padding_phrases: int = 0
    padding_words: int = 0
    approval_tags: int = 0
    immediate_repeats: int = 0
    repeated_content_ratio: float = 0.0
    type_token_ratio: float = 0.0
    words_per_turn: float = 0.0
    grammar_errors: int = 0
    grammar_counts: dict[str, int] = field(default_factory=dict)
    punctuation_per_word: float = 0.0
    signposts: int = 0
    numbers: int = 0
    commitments: int = 0
    sound_repeats: int = 0  # part-word repetitions and prolonged sounds ("b-b-but", "sssso")
    filled_pauses: int = 0  # the hesitation sounds among the fillers (um, uh, er)
    long_pauses: int = 0  # pauses marked "..." in the transcript
    jargon: int = 0
    benefits: int = 0
    calls_to_action: int = 0
    emotion: int = 0
    proof: int = 0
    listener_words: int = 0  # you, your, ...
    speaker_words: int = 0  # I, we, our, ...

    def rate(self, count: float) -> float:
        """`count` per word of the answer (0 for an empty answer)."""
        return count / self.words if self.words else 0.0


def split_sentences(text: str) -> list[str]:
    """Sentences of one turn, stripped, empties dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def count_words(text: str) -> int:
    """Words in `text` as the features count them (stutter fragments are not words)."""
    cleaned = collapse(_normalise(text), Marks())
    return sum(1 for t in _TOKEN.findall(cleaned.lower()) if t not in ",;:")


_RHETORIC = (
    ("jargon", rh.JARGON),
    ("benefits", rh.BENEFITS),
    ("calls_to_action", rh.CALLS_TO_ACTION),
    ("emotion", rh.EMOTION),
    ("proof", rh.PROOF),
)


def _count_phrases(joined: str, phrases: Sequence[str], counts: Counter | None = None) -> int:
    total = 0
    for phrase in phrases:
        hits = len(re.findall(rf"(?<![\w']){re.escape(phrase)}(?![\w'])", joined))
        if hits and counts is not None:
            counts[phrase] += hits
        total += hits
    return total


def _immediate_repeats(words: list[str]) -> int:
    """Stutters and restarts: a 1-3 word run said twice in a row ("the the", "the numbers the numbers")."""
    repeats, i = 0, 0
    while i < len(words):
        for n in (3, 2, 1):
            if i + 2 * n <= len(words) and words[i : i + n] == words[i + n : i + 2 * n]:
                if not (n == 1 and words[i] in lx.LEGIT_DOUBLES):
                    repeats += 1
                    i += n
                    break
        else:
            i += 1
            continue
    return repeats


def _mattr(words: list[str], window: int = MATTR_WINDOW) -> float:
    if not words:
        return 0.0
    if len(words) <= window:
        return len(set(words)) / len(words)
    ratios = [len(set(words[i : i + window])) / window for i in range(len(words) - window + 1)]
    return sum(ratios) / len(ratios)


def extract_features(turn_texts: Sequence[str]) -> Features:
    """Features of the user's answer given as one string per turn (empty turns are ignored)."""
    marks = Marks()
    texts = [collapse(_normalise(t), marks).strip() for t in turn_texts if t and t.strip()]
    fillers: Counter[str] = Counter()
    hedges: Counter[str] = Counter()
    grammar: Counter[str] = Counter()
    all_words: list[str] = []
    fluent_words: list[str] = []  # fillers removed
    sentence_lengths: list[int] = []
    counts: Counter[str] = Counter()
    for text in texts:
        counts["lower_i"] += len(_LOWER_I.findall(text))
        counts["punct"] += len(_PUNCT.findall(text))
        for sentence in split_sentences(text):
            tokens = _TOKEN.findall(sentence.lower())
            filler_at, filler_labels = filler_positions(tokens)
            words = [t for t in tokens if t not in ",;:"]
            if not words:
                continue
            fillers.update(filler_labels)
            kept = [t for i, t in enumerate(tokens) if t not in ",;:" and i not in filler_at]
            joined = " ".join(words)
            _count_phrases(joined, lx.HEDGES, hedges)
            padding: Counter[str] = Counter()
            counts["padding"] += _count_phrases(joined, lx.PADDING_PHRASES, padding)
            counts["padding_words"] += sum(len(p.split()) * n for p, n in padding.items())
            counts["approval"] += _count_phrases(joined, lx.APPROVAL_TAGS)
            counts["signposts"] += _count_phrases(joined, lx.SIGNPOSTS)
            counts["commitments"] += _count_phrases(joined, lx.COMMITMENTS)
            for name, phrases in _RHETORIC:
                counts[name] += _count_phrases(joined, phrases)
            counts["listener"] += sum(1 for w in kept if w in rh.LISTENER_WORDS)  # not the "you" of "you know"
            counts["speaker"] += sum(1 for w in kept if w in rh.SPEAKER_WORDS)
            counts["numbers"] += sum(1 for w in words if is_number(w))
            counts["repeats"] += _immediate_repeats(kept)
            grammar.update(grammar_errors(kept))
            sentence_lengths.append(len(kept))
            all_words.extend(words)
            fluent_words.extend(kept)
    grammar["lowercase_i"] += counts["lower_i"]
    content = [w for w in fluent_words if w not in lx.STOPWORDS and len(w) > 2 and not w.isdigit()]
    n_words, n_sent = len(all_words), len(sentence_lengths)
    return Features(
        words=n_words,
        turns=len(texts),
        sentences=n_sent,
        mean_sentence_words=sum(sentence_lengths) / n_sent if n_sent else 0.0,
        max_sentence_words=max(sentence_lengths, default=0),
        run_on_sentences=sum(1 for n in sentence_lengths if n > RUN_ON_WORDS),
        run_on_excess_words=sum(n - RUN_ON_WORDS for n in sentence_lengths if n > RUN_ON_WORDS),
        fragments=sum(1 for n in sentence_lengths if n < FRAGMENT_WORDS),
        fillers=sum(fillers.values()),
        filler_counts=dict(fillers.most_common()),
        hedges=sum(hedges.values()),
        hedge_counts=dict(hedges.most_common()),
        padding_phrases=counts["padding"],
        padding_words=counts["padding_words"],
        approval_tags=counts["approval"],
        immediate_repeats=counts["repeats"],
        repeated_content_ratio=1 - len(set(content)) / len(content) if content else 0.0,
        type_token_ratio=_mattr(all_words),
        words_per_turn=n_words / len(texts) if texts else 0.0,
        grammar_errors=sum(grammar.values()),
        grammar_counts={k: v for k, v in grammar.items() if v},
        punctuation_per_word=counts["punct"] / n_words if n_words else 0.0,
        signposts=counts["signposts"],
        numbers=counts["numbers"],
        commitments=counts["commitments"],
        sound_repeats=marks.sound_repeats,
        filled_pauses=sum(n for label, n in fillers.items() if label in lx.FILLER_SOUNDS),
        long_pauses=marks.long_pauses,
        jargon=counts["jargon"],
        benefits=counts["benefits"],
        calls_to_action=counts["calls_to_action"],
        emotion=counts["emotion"],
        proof=counts["proof"],
        listener_words=counts["listener"],
        speaker_words=counts["speaker"],
    )

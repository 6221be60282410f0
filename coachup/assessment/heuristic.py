"""Deterministic scoring from `Features`: the four category scores of an answer, and one skill's own scores.

Every score is a product of factors in (0, 1]. Each factor is `0.5 ** (x / h)`: 1 when the problem `x`
is absent, halved every time `x` grows by its half-life `h`. Factors are keyed by (category, aspect):
the aspect is the feature of speech it judges (fillers, stutters, benefits, ...). The half-lives are
round numbers chosen from what a speaking coach tolerates; the calibration set checks their direction
(rank correlation), it was not used to fit them.

- `category_scores`: the whole answer, from the factors marked `in_answer` (the calibrated ones).
- `skill_scores`: one skill, from the factors its criteria name, and only those, so a fluency skill
  is scored on fillers and hesitation and a conciseness skill on waste, repetition and length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from coachup.assessment.features import FRAGMENT_WORDS, Features
from coachup.assessment.types import CATEGORIES, Criterion

__all__ = ["FACTORS", "Factor", "category_scores", "skill_scores", "waste_words", "stutters"]

IDEAL_SENTENCE_WORDS = 20  # words; longer averages start to cost clarity and conciseness
MIN_WORDS_PER_TURN = 8  # words; shorter turns leave the listener without substance
MAX_WORDS_PER_TURN = 80  # words; longer turns stop being a conversation
NATURAL_REPETITION = 0.10  # share of repeated content words any answer has (the topic word comes back)
PAUSE_EVERY = 15  # words; a spoken answer needs a marked pause at least this often


def _halve(x: float, half_life: float) -> float:
    """0.5 ** (x / half_life) for x > 0, else 1: the score halves each time x grows by `half_life`."""
    return 0.5 ** (x / half_life) if x > 0 else 1.0


@dataclass(frozen=True)
class Factor:
    """`problem(features)` (0 = none) halving the score every `half_life`; `in_answer`: part of the
    calibrated whole-answer category score, not only of the skills that name it."""

    problem: Callable[[Features], float]
    half_life: float
    in_answer: bool = True

    def __call__(self, f: Features) -> float:
        return _halve(self.problem(f), self.half_life)


def stutters(f: Features) -> int:
    """Repeated words and phrases plus repeated or held sounds."""
    return f.immediate_repeats + f.sound_repeats


def waste_words(f: Features) -> int:
    """Words that add no meaning: filler and hedge words, padding phrases, repeated runs (capped at all words)."""
    filler_words = sum(len(k.split()) * n for k, n in f.filler_counts.items())
    hedge_words = sum(len(k.split()) * n for k, n in f.hedge_counts.items())
    return min(f.words, filler_words + hedge_words + f.padding_words + f.immediate_repeats)


def _absent(count: Callable[[Features], float]) -> Callable[[Features], float]:
    """A presence check as a problem: 1 when the answer has none of it (one absence halves the score)."""
    return lambda f: 0.0 if count(f) > 0 else 1.0


def _share(part: int, f: Features) -> float:
    return part / f.sentences if f.sentences else 1.0


def _turn_length_gap(f: Features) -> float:
    short = max(0.0, MIN_WORDS_PER_TURN - f.words_per_turn) / MIN_WORDS_PER_TURN
    return short + max(0.0, f.words_per_turn - MAX_WORDS_PER_TURN) / MAX_WORDS_PER_TURN


def _choppiness(f: Features) -> float:
    return max(0.0, FRAGMENT_WORDS + 1 - f.mean_sentence_words) / (FRAGMENT_WORDS + 1)


def _rhythm(f: Features) -> float:
    ratio = f.max_sentence_words / f.mean_sentence_words if f.mean_sentence_words else 0.0
    return max(0.0, ratio - 3) / 3


FACTORS: dict[tuple[str, str], Factor] = {
    # correctness: one grammar error per 20 words halves it; disfluent or hedged (vague) wording and
    # fragments cost less (half at one per 2 words, all fragments); run-ons a little.
    ("correctness", "grammar"): Factor(lambda f: f.rate(f.grammar_errors), 0.05),
    ("correctness", "fillers"): Factor(lambda f: f.rate(f.fillers), 0.5),
    ("correctness", "stutters"): Factor(lambda f: f.rate(stutters(f)), 0.5),
    ("correctness", "hedges"): Factor(lambda f: f.rate(f.hedges), 0.5),
    ("correctness", "fragments"): Factor(lambda f: _share(f.fragments, f), 1.0),
    ("correctness", "run_ons"): Factor(lambda f: _share(f.run_on_sentences, f) if f.sentences else 0.0, 2.0),
    # clarity: halves at one filler per 7 words, one hedge per 8, one stutter per 7, one grammar error
    # per 4, a 40-word average sentence, turns 4 words short of the 8-word minimum.
    ("clarity", "fillers"): Factor(lambda f: f.rate(f.fillers), 0.15),
    ("clarity", "hedges"): Factor(lambda f: f.rate(f.hedges), 0.12),
    ("clarity", "stutters"): Factor(lambda f: f.rate(stutters(f)), 0.15),
    ("clarity", "grammar"): Factor(lambda f: f.rate(f.grammar_errors), 0.25),
    ("clarity", "sentence_length"): Factor(lambda f: f.mean_sentence_words - IDEAL_SENTENCE_WORDS, 20),
    ("clarity", "substance"): Factor(
        lambda f: max(0.0, MIN_WORDS_PER_TURN - f.words_per_turn) / MIN_WORDS_PER_TURN, 0.5
    ),
    # conciseness: halves when a fifth of the words are waste, when repeated content words exceed the
    # natural 10% by 20 points, and at a 40-word average sentence.
    ("conciseness", "waste"): Factor(lambda f: f.rate(waste_words(f)), 0.2),
    ("conciseness", "repetition"): Factor(lambda f: f.repeated_content_ratio - NATURAL_REPETITION, 0.2),
    ("conciseness", "sentence_length"): Factor(lambda f: f.mean_sentence_words - IDEAL_SENTENCE_WORDS, 20),
    # fluency: halves at one filler or stutter per 10 words, one hedge per 4 (hesitation), half the words
    # past the run-on limit, and sentences of a single word (halting delivery; no cost from 4 words up).
    ("fluency", "fillers"): Factor(lambda f: f.rate(f.fillers), 0.10),
    ("fluency", "stutters"): Factor(lambda f: f.rate(stutters(f)), 0.10),
    ("fluency", "hedges"): Factor(lambda f: f.rate(f.hedges), 0.25),
    ("fluency", "run_ons"): Factor(lambda f: f.rate(f.run_on_excess_words), 0.5),
    ("fluency", "choppiness"): Factor(_choppiness, 0.75),
    # ---- factors only the skills that name them use (outside the calibrated answer scores) ----
    ("clarity", "run_ons"): Factor(lambda f: _share(f.run_on_sentences, f) if f.sentences else 0.0, 1.0, False),
    ("clarity", "jargon"): Factor(lambda f: f.rate(f.jargon), 0.05, False),
    ("clarity", "approval"): Factor(lambda f: f.rate(f.approval_tags), 0.05, False),
    ("clarity", "commitment"): Factor(_absent(lambda f: f.commitments), 1.0, False),
    ("clarity", "structure"): Factor(_absent(lambda f: f.signposts), 1.0, False),
    ("clarity", "concreteness"): Factor(_absent(lambda f: f.numbers), 1.0, False),
    ("clarity", "development"): Factor(_absent(lambda f: f.sentences >= 2), 1.0, False),
    ("clarity", "benefits"): Factor(_absent(lambda f: f.benefits), 1.0, False),
    ("clarity", "listener"): Factor(_absent(lambda f: f.listener_words >= max(1, f.speaker_words)), 1.0, False),
    ("clarity", "proof"): Factor(_absent(lambda f: f.numbers + f.proof), 1.0, False),
    ("clarity", "emotion"): Factor(_absent(lambda f: f.emotion), 1.0, False),
    ("clarity", "call_to_action"): Factor(_absent(lambda f: f.calls_to_action), 1.0, False),
    ("fluency", "filled_pauses"): Factor(lambda f: f.rate(f.filled_pauses), 0.10, False),
    ("fluency", "blocks"): Factor(lambda f: f.rate(f.long_pauses), 0.05, False),
    ("fluency", "turn_length"): Factor(_turn_length_gap, 0.5, False),
    ("fluency", "rhythm"): Factor(_rhythm, 0.5, False),
    ("fluency", "pauses"): Factor(
        lambda f: max(0.0, 1 / PAUSE_EVERY - f.punctuation_per_word) * PAUSE_EVERY, 0.5, False
    ),
}


def _product(f: Features, keys: Iterable[tuple[str, str]]) -> float:
    return round(min(1.0, max(0.0, math.prod(FACTORS[k](f) for k in keys))), 3)


def category_scores(f: Features) -> dict[str, float]:
    """All four category scores of the whole answer in 0..1 (3 decimals); an empty answer scores 0."""
    if f.words == 0:
        return {c: 0.0 for c in CATEGORIES}
    return {c: _product(f, (k for k, fac in FACTORS.items() if k[0] == c and fac.in_answer)) for c in CATEGORIES}


def skill_scores(f: Features, criteria: Iterable[Criterion]) -> dict[str, float]:
    """One skill's scores: per category its criteria speak to, the product of the distinct factors they
    name (a tiered pair of criteria on one factor counts it once). An empty answer scores 0."""
    keys = list(dict.fromkeys((c.category, c.aspect) for c in criteria if (c.category, c.aspect) in FACTORS))
    return {
        cat: 0.0 if f.words == 0 else _product(f, (k for k in keys if k[0] == cat))
        for cat in CATEGORIES
        if any(k[0] == cat for k in keys)
    }

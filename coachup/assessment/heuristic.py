"""Deterministic scoring of the four rubric categories from `Features`, plus the skill level.

Every category score is a product of factors in (0, 1]. Each factor is `0.5 ** (x / h)`: 1 when the
problem `x` is absent, halved every time `x` grows by its half-life `h`. Each factor falls monotonically
with its own problem, and the product stays explainable ("fillers halved your fluency"). The
half-lives are round numbers chosen from what a speaking coach tolerates; the calibration set checks
their direction (rank correlation), it was not used to fit them.
"""

from __future__ import annotations

from collections.abc import Sequence

from coachup.assessment.features import FRAGMENT_WORDS, Features
from coachup.assessment.types import CATEGORIES

__all__ = ["category_scores", "level_for", "waste_words", "disfluencies"]

IDEAL_SENTENCE_WORDS = 20  # words; longer averages start to cost clarity and conciseness
MIN_WORDS_PER_TURN = 8  # words; shorter turns leave the listener without substance
NATURAL_REPETITION = 0.10  # share of repeated content words any answer has (the topic word comes back)


def _halve(x: float, half_life: float) -> float:
    """0.5 ** (x / half_life) for x > 0, else 1: the score halves each time x grows by `half_life`."""
    return 0.5 ** (x / half_life) if x > 0 else 1.0


def disfluencies(f: Features) -> int:
    """Fillers plus stutters/restarts: the interruptions a listener hears."""
    return f.fillers + f.immediate_repeats


def waste_words(f: Features) -> int:
    """Words that add no meaning: filler and hedge words, padding phrases, repeated runs (capped at all words)."""
    filler_words = sum(len(k.split()) * n for k, n in f.filler_counts.items())
    hedge_words = sum(len(k.split()) * n for k, n in f.hedge_counts.items())
    return min(f.words, filler_words + hedge_words + f.padding_words + f.immediate_repeats)


def _sentence_length_factor(f: Features) -> float:
    # Past ~20 words a listener loses the thread; a 40-word average halves the factor.
    return _halve(f.mean_sentence_words - IDEAL_SENTENCE_WORDS, IDEAL_SENTENCE_WORDS)


def correctness(f: Features) -> float:
    """Grammar and accuracy. One grammar error per 20 words halves it; disfluent or hedged (vague) wording
    and fragments cost less: half at one filler/stutter per 2 words, one hedge per 2 words, all fragments;
    run-ons cost a little (29% when every sentence is one: half-life of twice that share)."""
    fragment_share = f.fragments / f.sentences if f.sentences else 1.0
    run_on_share = f.run_on_sentences / f.sentences if f.sentences else 0.0
    return (
        _halve(f.rate(f.grammar_errors), 0.05)
        * _halve(f.rate(disfluencies(f)), 0.5)
        * _halve(f.rate(f.hedges), 0.5)
        * _halve(fragment_share, 1.0)
        * _halve(run_on_share, 2.0)
    )


def clarity(f: Features) -> float:
    """How easily a listener follows. Halves at: one filler per 7 words, one hedge per 8 words, one stutter
    per 7 words, one grammar error per 4 words, a 40-word average sentence, and turns 4 words short of
    the 8-word minimum."""
    missing_substance = max(0.0, MIN_WORDS_PER_TURN - f.words_per_turn) / MIN_WORDS_PER_TURN
    return (
        _halve(f.rate(f.fillers), 0.15)
        * _halve(f.rate(f.hedges), 0.12)
        * _halve(f.rate(f.immediate_repeats), 0.15)
        * _halve(f.rate(f.grammar_errors), 0.25)
        * _sentence_length_factor(f)
        * _halve(missing_substance, 0.5)
    )


def conciseness(f: Features) -> float:
    """Meaning per word. Halves when a fifth of the words are waste (see `waste_words`), when repeated
    content words exceed the natural 10% by 20 points, and at a 40-word average sentence."""
    excess_repetition = f.repeated_content_ratio - NATURAL_REPETITION
    return _halve(f.rate(waste_words(f)), 0.2) * _halve(excess_repetition, 0.2) * _sentence_length_factor(f)


def fluency(f: Features) -> float:
    """Smooth delivery. Halves at one filler or stutter per 10 words, one hedge per 4 words (hesitation),
    when half the words sit past the 30-word run-on limit (no stops), and when sentences average a single
    word (halting, choppy delivery; no cost from 4 words up)."""
    choppiness = max(0.0, FRAGMENT_WORDS + 1 - f.mean_sentence_words) / (FRAGMENT_WORDS + 1)
    return (
        _halve(f.rate(disfluencies(f)), 0.10)
        * _halve(f.rate(f.hedges), 0.25)
        * _halve(f.rate(f.run_on_excess_words), 0.5)
        * _halve(choppiness, 0.75)
    )


_SCORERS = {"correctness": correctness, "clarity": clarity, "conciseness": conciseness, "fluency": fluency}


def category_scores(f: Features) -> dict[str, float]:
    """All four category scores in 0..1, rounded to 3 decimals; an empty answer scores 0 everywhere."""
    if f.words == 0:
        return {c: 0.0 for c in CATEGORIES}
    return {c: round(min(1.0, max(0.0, _SCORERS[c](f))), 3) for c in CATEGORIES}


def level_for(scores: dict[str, float], focus: Sequence[str]) -> int:
    """Skill level 1..5 from the mean score of the skill's focus categories (all four if none): each fifth
    of the 0..1 range is one level, so 0.8 and above is 5 and below 0.2 is 1."""
    cats = [c for c in focus if c in scores] or list(CATEGORIES)
    mean = sum(scores[c] for c in cats) / len(cats)
    return max(1, min(5, 1 + int(mean * 5)))

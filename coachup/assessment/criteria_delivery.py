"""Library criteria about how it is said: fillers, hesitation, stutters, pauses, pacing, confidence.

Tiers express how strongly a skill is shown: "fewer than 6 fillers per 100 words" and "fewer than 2"
are separate criteria, so a smoother answer meets more of them (see `level`).
"""

from __future__ import annotations

from coachup.assessment.checks import Entry, entry, mix, per100, plural
from coachup.assessment.features import FRAGMENT_WORDS, Features
from coachup.assessment.heuristic import PAUSE_EVERY, stutters

__all__ = ["ENTRIES"]


def _fillers(f: Features) -> str:
    return f"{plural(f.fillers, 'filler word')} ({per100(f, f.fillers):.1f} per 100 words, {mix(f.filler_counts)})"


def _filler_advice(f: Features) -> str:
    return f"{_fillers(f)}; replace each with a short silent pause."


ENTRIES: tuple[Entry, ...] = (
    # ---- fillers and hesitation ----
    entry(
        "filler_rate_tolerable",
        "Fewer than 15 filler words per 100 words.",
        "fluency",
        "fillers",
        lambda f: per100(f, f.fillers) < 15,
        lambda f: f"{_fillers(f)}: noticeable, but not in every sentence.",
        _filler_advice,
    ),
    entry(
        "filler_rate_moderate",
        "Fewer than 6 filler words per 100 words.",
        "fluency",
        "fillers",
        lambda f: per100(f, f.fillers) < 6,
        lambda f: f"{plural(f.fillers, 'filler word').capitalize()} in {f.words} words: fillers did not take over.",
        _filler_advice,
    ),
    entry(
        "filler_rate_low",
        "Fewer than 2 filler words per 100 words.",
        "fluency",
        "fillers",
        lambda f: per100(f, f.fillers) < 2,
        lambda f: f"{plural(f.fillers, 'filler word').capitalize()} in {f.words} words: smooth delivery.",
        _filler_advice,
    ),
    entry(
        "few_hedges",
        "Fewer than 2 hedges ('I guess', 'maybe', 'probably') per 100 words.",
        "fluency",
        "hedges",
        lambda f: per100(f, f.hedges) < 2,
        lambda f: f"{plural(f.hedges, 'hedge').capitalize()} in {f.words} words: statements sounded sure.",
        lambda f: (
            f"{plural(f.hedges, 'hedge')} ({per100(f, f.hedges):.1f} per 100 words, {mix(f.hedge_counts)}); "
            "state the point, then qualify once if needed."
        ),
    ),
    entry(
        "flowing_sentences",
        f"Sentences flow: {FRAGMENT_WORDS + 1} or more words on average, not halting fragments.",
        "fluency",
        "choppiness",
        lambda f: f.mean_sentence_words >= FRAGMENT_WORDS + 1,
        lambda f: f"Sentences averaged {f.mean_sentence_words:.0f} words: a steady flow.",
        lambda f: f"Sentences averaged {f.mean_sentence_words:.1f} words; join the fragments into whole thoughts.",
    ),
    # ---- stutters and blocks ----
    entry(
        "few_repetitions",
        "Fewer than 3 repetitions (repeated sounds or words) per 100 words.",
        "fluency",
        "stutters",
        lambda f: per100(f, stutters(f)) < 3,
        lambda f: f"{plural(stutters(f), 'repetition').capitalize()} in {f.words} words.",
        lambda f: (
            f"{plural(stutters(f), 'repetition')} ({per100(f, stutters(f)):.1f} per 100 words); slow the "
            "first sound of each phrase and let it flow into the word."
        ),
    ),
    entry(
        "no_word_repetitions",
        "No repeated words or phrases ('the the', 'I want I want').",
        "fluency",
        "stutters",
        lambda f: f.immediate_repeats == 0,
        lambda f: "No repeated words or phrases.",
        lambda f: (
            f"{plural(f.immediate_repeats, 'repeated word or phrase', 'repeated words or phrases')}; "
            "finish each phrase once, then move on."
        ),
    ),
    entry(
        "no_sound_repetitions",
        "No repeated or held sounds ('b-b-but', 'sssso').",
        "fluency",
        "stutters",
        lambda f: f.sound_repeats == 0,
        lambda f: "No repeated or held sounds.",
        lambda f: f"{plural(f.sound_repeats, 'repeated or held sound')}; start the word with a gentle, easy onset.",
    ),
    entry(
        "few_filled_pauses",
        "Fewer than 3 filled pauses (um, uh) per 100 words.",
        "fluency",
        "filled_pauses",
        lambda f: per100(f, f.filled_pauses) < 3,
        lambda f: f"{plural(f.filled_pauses, 'filled pause').capitalize()} in {f.words} words.",
        lambda f: (
            f"{plural(f.filled_pauses, 'filled pause')} ({per100(f, f.filled_pauses):.1f} per 100 words); "
            "a silent breath does the same job."
        ),
    ),
    entry(
        "no_long_pauses",
        "No long pauses or blocks (marked '...' in the transcript).",
        "fluency",
        "blocks",
        lambda f: f.long_pauses == 0,
        lambda f: "No long pauses or blocks.",
        lambda f: f"{plural(f.long_pauses, 'long pause')}; breathe out gently before the word instead of pushing.",
    ),
    # ---- pacing ----
    entry(
        "balanced_turn_length",
        "Turns are neither curt nor long-winded (8 to 80 words on average).",
        "fluency",
        "turn_length",
        lambda f: 8 <= f.words_per_turn <= 80,
        lambda f: f"Turns averaged {f.words_per_turn:.0f} words, a comfortable length.",
        lambda f: f"Turns averaged {f.words_per_turn:.0f} words; aim for 8 to 80 words per answer.",
    ),
    entry(
        "steady_sentence_rhythm",
        "The longest sentence is at most 3 times the average length.",
        "fluency",
        "rhythm",
        lambda f: f.sentences > 0 and f.max_sentence_words <= 3 * f.mean_sentence_words,
        lambda f: f"Sentence lengths were steady (longest {f.max_sentence_words} words).",
        lambda f: (
            f"The longest sentence ({f.max_sentence_words} words) was over 3 times the average "
            f"({f.mean_sentence_words:.0f}); break it up."
        ),
    ),
    entry(
        "marked_pauses",
        f"Pauses are marked: at least one punctuation mark per {PAUSE_EVERY} words.",
        "fluency",
        "pauses",
        lambda f: f.punctuation_per_word >= 1 / PAUSE_EVERY,
        lambda f: "Pauses were marked regularly.",
        lambda f: (
            f"{f.punctuation_per_word * PAUSE_EVERY:.1f} pauses per {PAUSE_EVERY} words; pause at the end of each idea."
        ),
    ),
    # ---- confidence ----
    entry(
        "no_approval_seeking",
        "No approval-seeking tags ('if that makes sense', 'right?').",
        "clarity",
        "approval",
        lambda f: f.approval_tags == 0,
        lambda f: "No approval-seeking tags.",
        lambda f: f"{plural(f.approval_tags, 'approval-seeking tag')}; end on the point, not a question.",
    ),
    entry(
        "commitment_language",
        "States a position or commitment (will, propose, recommend, decided).",
        "clarity",
        "commitment",
        lambda f: f.commitments >= 1,
        lambda f: f"Stated {plural(f.commitments, 'position')} or commitments directly.",
        lambda f: "No clear position; say what you will do or recommend.",
    ),
)

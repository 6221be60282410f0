"""One explicit check per catalogue criterion, and the short sentences that explain its outcome.

A check reads only `Features`, so every met/unmet verdict can be traced to a count. Praise and advice
cite counts and lexicon words, never the speaker's sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coachup.assessment.features import RUN_ON_WORDS, Features
from coachup.assessment.heuristic import waste_words

__all__ = ["Check", "CHECKS", "evaluate_criteria", "explain"]


@dataclass(frozen=True)
class Check:
    """`passes(features)` decides the criterion; `praise`/`advice` explain a pass/fail with counts."""

    passes: Callable[[Features], bool]
    praise: Callable[[Features], str]
    advice: Callable[[Features], str]


def _per100(f: Features, count: float) -> float:
    return 100.0 * f.rate(count)


def _top(counts: dict[str, int]) -> str:
    """The most frequent lexicon entry (ties: alphabetical), with the pronoun capitalised."""
    if not counts:
        return "-"
    label = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return " ".join("I" if w == "i" else w for w in label.split())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _grammar(f: Features, *kinds: str) -> int:
    return sum(f.grammar_counts.get(k, 0) for k in kinds)


def _filler_advice(f: Features) -> str:
    return (
        f"{_plural(f.fillers, 'filler word')} ({_per100(f, f.fillers):.1f} per 100 words, mostly "
        f"'{_top(f.filler_counts)}'); replace each with a short silent pause."
    )


_SENTENCE_LENGTH = Check(
    lambda f: f.mean_sentence_words <= 20,
    lambda f: f"Sentences averaged {f.mean_sentence_words:.0f} words, short enough to follow.",
    lambda f: f"Sentences averaged {f.mean_sentence_words:.0f} words; split them at each new idea to stay under 20.",
)

CHECKS: dict[str, Check] = {
    "clear_sentence_length": _SENTENCE_LENGTH,
    "to_the_point_sentences": _SENTENCE_LENGTH,
    "no_run_on_sentences": Check(
        lambda f: f.run_on_sentences == 0,
        lambda f: f"No sentence ran past {RUN_ON_WORDS} words.",
        lambda f: (
            f"{_plural(f.run_on_sentences, 'sentence')} ran past {RUN_ON_WORDS} words (longest "
            f"{f.max_sentence_words}); stop when a point is made."
        ),
    ),
    "minimal_fillers": Check(
        lambda f: _per100(f, f.fillers) < 3,
        lambda f: f"Only {_plural(f.fillers, 'filler word')} in {f.words} words.",
        _filler_advice,
    ),
    "substantive_turns": Check(
        lambda f: f.words_per_turn >= 8,
        lambda f: f"Turns averaged {f.words_per_turn:.0f} words, enough to carry a point.",
        lambda f: f"Turns averaged {f.words_per_turn:.1f} words; add a reason or an example to each answer.",
    ),
    "no_padding_phrases": Check(
        lambda f: f.padding_phrases == 0,
        lambda f: "No padding phrases.",
        lambda f: (
            f"{_plural(f.padding_phrases, 'padding phrase')} added {f.padding_words} words; open with the point itself."
        ),
    ),
    "low_waste_words": Check(
        lambda f: waste_words(f) * 10 < f.words,
        lambda f: f"Only {_plural(waste_words(f), 'word')} of {f.words} were fillers, hedges or padding.",
        lambda f: f"{waste_words(f)} of {f.words} words were fillers, hedges or padding; cut them and keep the facts.",
    ),
    "low_word_repetition": Check(
        lambda f: f.repeated_content_ratio < 0.25,
        lambda f: f"Content words repeated only {100 * f.repeated_content_ratio:.0f}% of the time.",
        lambda f: (
            f"{100 * f.repeated_content_ratio:.0f}% of content words were repeats; use a pronoun or "
            "drop the restatement."
        ),
    ),
    "filler_rate_low": Check(
        lambda f: _per100(f, f.fillers) < 2,
        lambda f: f"{_plural(f.fillers, 'filler word')} in {f.words} words: smooth delivery.",
        _filler_advice,
    ),
    "no_stutters": Check(
        lambda f: f.immediate_repeats == 0,
        lambda f: "No stutters or restarts.",
        lambda f: f"{_plural(f.immediate_repeats, 'stutter or restart')}; slow down and finish each phrase once.",
    ),
    "varied_vocabulary": Check(
        lambda f: f.type_token_ratio >= 0.6,
        lambda f: f"Varied vocabulary (type-token ratio {f.type_token_ratio:.2f}).",
        lambda f: (
            f"Vocabulary was repetitive (type-token ratio {f.type_token_ratio:.2f}, target 0.60); vary your wording."
        ),
    ),
    "balanced_turn_length": Check(
        lambda f: 8 <= f.words_per_turn <= 80,
        lambda f: f"Turns averaged {f.words_per_turn:.0f} words, a comfortable length.",
        lambda f: f"Turns averaged {f.words_per_turn:.0f} words; aim for 8 to 80 words per answer.",
    ),
    "steady_sentence_rhythm": Check(
        lambda f: f.sentences > 0 and f.max_sentence_words <= 3 * f.mean_sentence_words,
        lambda f: f"Sentence lengths were steady (longest {f.max_sentence_words} words).",
        lambda f: (
            f"The longest sentence ({f.max_sentence_words} words) was over 3 times the average "
            f"({f.mean_sentence_words:.0f}); break it up."
        ),
    ),
    "marked_pauses": Check(
        lambda f: f.punctuation_per_word >= 1 / 15,
        lambda f: "Pauses were marked regularly.",
        lambda f: f"Only {f.punctuation_per_word * 15:.1f} pauses per 15 words; pause at the end of each idea.",
    ),
    "subject_verb_agreement": Check(
        lambda f: _grammar(f, "agreement") == 0,
        lambda f: "Subjects and verbs agreed throughout.",
        lambda f: (
            f"{_plural(_grammar(f, 'agreement'), 'subject-verb agreement slip')}; match the verb to "
            "its subject (we were, they don't)."
        ),
    ),
    "pronoun_case": Check(
        lambda f: _grammar(f, "pronoun_case", "lowercase_i") == 0,
        lambda f: "Pronouns were used in the right case.",
        lambda f: (
            f"{_plural(_grammar(f, 'pronoun_case', 'lowercase_i'), 'pronoun slip')}; use subject "
            "forms as subjects (he and I went)."
        ),
    ),
    "verb_forms": Check(
        lambda f: _grammar(f, "verb_form", "double_negative") == 0,
        lambda f: "Verb forms were standard.",
        lambda f: (
            f"{_plural(_grammar(f, 'verb_form', 'double_negative'), 'verb-form slip')}; use participles "
            "after have (have shown) and one negative per clause."
        ),
    ),
    "complete_sentences": Check(
        lambda f: f.sentences > 0 and f.fragments * 3 <= f.sentences,
        lambda f: "Sentences were complete.",
        lambda f: (
            f"{_plural(f.fragments, 'fragment')} in {_plural(f.sentences, 'sentence')}; answer in full sentences."
        ),
    ),
    "signposting": Check(
        lambda f: f.signposts >= 1,
        lambda f: f"Used {_plural(f.signposts, 'signpost')} to guide the listener.",
        lambda f: "No signposts; link ideas with first, because, as a result.",
    ),
    "concrete_details": Check(
        lambda f: f.numbers >= 1,
        lambda f: f"Gave {_plural(f.numbers, 'concrete detail')} (numbers, dates).",
        lambda f: "No numbers or dates; back the point with one concrete detail.",
    ),
    "developed_answer": Check(
        lambda f: f.sentences >= 2,
        lambda f: f"Developed the answer over {f.sentences} sentences.",
        lambda f: "The answer was a single sentence; add the reason or the next step.",
    ),
    "few_hedges": Check(
        lambda f: _per100(f, f.hedges) < 2,
        lambda f: f"Only {_plural(f.hedges, 'hedge')}: statements sounded sure.",
        lambda f: (
            f"{_plural(f.hedges, 'hedge')} ({_per100(f, f.hedges):.1f} per 100 words, mostly "
            f"'{_top(f.hedge_counts)}'); state the point, then qualify once if needed."
        ),
    ),
    "no_approval_seeking": Check(
        lambda f: f.approval_tags == 0,
        lambda f: "No approval-seeking tags.",
        lambda f: f"{_plural(f.approval_tags, 'approval-seeking tag')}; end on the point, not a question.",
    ),
    "commitment_language": Check(
        lambda f: f.commitments >= 1,
        lambda f: f"Stated {_plural(f.commitments, 'position')} or commitments directly.",
        lambda f: "No clear position; say what you will do or recommend.",
    ),
}


def evaluate_criteria(criterion_ids: Sequence[str], f: Features) -> tuple[list[str], list[str]]:
    """(met, unmet) criterion ids in the given order. An empty answer meets nothing; ids without a check
    are left out of both lists (a custom rubric the heuristic cannot judge)."""
    met: list[str] = []
    unmet: list[str] = []
    for cid in criterion_ids:
        check = CHECKS.get(cid)
        if check is None:
            continue
        (met if f.words and check.passes(f) else unmet).append(cid)
    return met, unmet


def explain(
    title: str, level: int, met: Sequence[str], unmet: Sequence[str], f: Features
) -> tuple[str, list[str], list[str]]:
    """(feedback, highlights <= 3, recommendations <= 3) for one skill, citing counts only."""
    if not f.words:
        return f"{title}: no user speech to assess.", [], ["Answer in a few full sentences."]
    judged = len(met) + len(unmet)
    feedback = (
        f"{title}: level {level}/5 from {_plural(f.words, 'word')} in {_plural(f.turns, 'turn')}; "
        f"met {len(met)} of {judged} criteria."
    )
    highlights = [CHECKS[c].praise(f) for c in met][:3]
    recommendations = [CHECKS[c].advice(f) for c in unmet][:3]
    if recommendations:
        feedback += " " + recommendations[0]
    elif highlights:
        feedback += " " + highlights[0]
    return feedback, highlights, recommendations

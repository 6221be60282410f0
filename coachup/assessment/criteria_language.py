"""Library criteria about what is said: clear sentences, plain words, no padding, grammar, structure."""

from __future__ import annotations

from coachup.assessment.checks import Entry, entry, mix, per100, plural
from coachup.assessment.features import RUN_ON_WORDS, Features
from coachup.assessment.heuristic import waste_words

__all__ = ["ENTRIES"]


def _avg_sentence(f: Features) -> str:
    return f"Sentences averaged {f.mean_sentence_words:.0f} words"


def _waste_praise(f: Features) -> str:
    waste = waste_words(f)
    if waste == 0:
        return f"None of the {f.words} words were fillers, hedges or padding."
    return f"Only {waste} of {f.words} words were fillers, hedges or padding."


def _grammar(f: Features, *kinds: str) -> int:
    return sum(f.grammar_counts.get(k, 0) for k in kinds)


ENTRIES: tuple[Entry, ...] = (
    # ---- clarity ----
    entry(
        "short_sentences",
        "Sentences are easy to follow: 20 words or fewer on average.",
        "clarity",
        "sentence_length",
        lambda f: f.mean_sentence_words <= 20,
        lambda f: f"{_avg_sentence(f)}, short enough to follow.",
        lambda f: f"{_avg_sentence(f)}; split them at each new idea to stay under 20.",
    ),
    entry(
        "no_run_on_sentences",
        f"No sentence runs past {RUN_ON_WORDS} words.",
        "clarity",
        "run_ons",
        lambda f: f.run_on_sentences == 0,
        lambda f: f"No sentence ran past {RUN_ON_WORDS} words.",
        lambda f: (
            f"{plural(f.run_on_sentences, 'sentence')} ran past {RUN_ON_WORDS} words (longest "
            f"{f.max_sentence_words}); stop when a point is made."
        ),
    ),
    entry(
        "plain_words",
        "Plain words: fewer than 1 buzzword per 100 words (synergy, leverage, paradigm).",
        "clarity",
        "jargon",
        lambda f: per100(f, f.jargon) < 1,
        lambda f: "Plain words, no buzzwords.",
        lambda f: f"{plural(f.jargon, 'buzzword')} in {f.words} words; say what it does in everyday words.",
    ),
    entry(
        "precise_wording",
        "Precise wording: fewer than 3 vague hedges per 100 words (maybe, probably, I guess).",
        "clarity",
        "hedges",
        lambda f: per100(f, f.hedges) < 3,
        lambda f: f"{plural(f.hedges, 'vague hedge').capitalize()} in {f.words} words: statements were precise.",
        lambda f: (
            f"{plural(f.hedges, 'hedge')} ({per100(f, f.hedges):.1f} per 100 words, {mix(f.hedge_counts)}); "
            "say exactly what you mean."
        ),
    ),
    entry(
        "minimal_fillers",
        "Filler words stay under 3 per 100 words, so every sentence gets to its point.",
        "clarity",
        "fillers",
        lambda f: per100(f, f.fillers) < 3,
        lambda f: f"{plural(f.fillers, 'filler word').capitalize()} in {f.words} words.",
        lambda f: (
            f"{plural(f.fillers, 'filler word')} ({per100(f, f.fillers):.1f} per 100 words, {mix(f.filler_counts)}) "
            "blurred the point; pause silently instead."
        ),
    ),
    entry(
        "substantive_turns",
        "Turns carry substance: 8 or more words on average.",
        "clarity",
        "substance",
        lambda f: f.words_per_turn >= 8,
        lambda f: f"Turns averaged {f.words_per_turn:.0f} words, enough to carry a point.",
        lambda f: f"Turns averaged {f.words_per_turn:.1f} words; add a reason or an example to each answer.",
    ),
    # ---- conciseness ----
    entry(
        "no_padding_phrases",
        "No padding phrases such as 'the thing is' or 'the reason is because'.",
        "conciseness",
        "waste",
        lambda f: f.padding_phrases == 0,
        lambda f: "No padding phrases.",
        lambda f: (
            f"{plural(f.padding_phrases, 'padding phrase')} added {plural(f.padding_words, 'word')}; "
            "open with the point itself."
        ),
    ),
    entry(
        "waste_under_quarter",
        "Under 25% of the words are fillers, hedges or padding.",
        "conciseness",
        "waste",
        lambda f: waste_words(f) * 4 < f.words,
        lambda f: _waste_praise(f),
        lambda f: f"{waste_words(f)} of {f.words} words were fillers, hedges or padding; cut them and keep the facts.",
    ),
    entry(
        "low_waste_words",
        "Under 10% of the words are fillers, hedges or padding.",
        "conciseness",
        "waste",
        lambda f: waste_words(f) * 10 < f.words,
        lambda f: _waste_praise(f),
        lambda f: f"{waste_words(f)} of {f.words} words were fillers, hedges or padding; cut them and keep the facts.",
    ),
    entry(
        "low_word_repetition",
        "Content words are not repeated needlessly (under 25% repeats).",
        "conciseness",
        "repetition",
        lambda f: f.repeated_content_ratio < 0.25,
        lambda f: f"Content words repeated only {100 * f.repeated_content_ratio:.0f}% of the time.",
        lambda f: (
            f"{100 * f.repeated_content_ratio:.0f}% of content words were repeats; use a pronoun or "
            "drop the restatement."
        ),
    ),
    entry(
        "to_the_point_sentences",
        "Each sentence makes its point in 20 words or fewer on average.",
        "conciseness",
        "sentence_length",
        lambda f: f.mean_sentence_words <= 20,
        lambda f: f"{_avg_sentence(f)}: each point made briefly.",
        lambda f: f"{_avg_sentence(f)}; cut each to the claim and one reason.",
    ),
    # ---- grammar ----
    entry(
        "subject_verb_agreement",
        "Subjects and verbs agree (no 'we was', 'they doesn't').",
        "correctness",
        "grammar",
        lambda f: _grammar(f, "agreement") == 0,
        lambda f: "Subjects and verbs agreed throughout.",
        lambda f: (
            f"{plural(_grammar(f, 'agreement'), 'subject-verb agreement slip')}; match the verb to "
            "its subject (we were, they don't)."
        ),
    ),
    entry(
        "pronoun_case",
        "Subject pronouns are used as subjects (no 'me and him goes').",
        "correctness",
        "grammar",
        lambda f: _grammar(f, "pronoun_case", "lowercase_i") == 0,
        lambda f: "Pronouns were used in the right case.",
        lambda f: (
            f"{plural(_grammar(f, 'pronoun_case', 'lowercase_i'), 'pronoun slip')}; use subject "
            "forms as subjects (he and I went)."
        ),
    ),
    entry(
        "verb_forms",
        "Verb forms and negation are standard (no 'have show', 'could of', 'don't have nothing').",
        "correctness",
        "grammar",
        lambda f: _grammar(f, "verb_form", "double_negative") == 0,
        lambda f: "Verb forms were standard.",
        lambda f: (
            f"{plural(_grammar(f, 'verb_form', 'double_negative'), 'verb-form slip')}; use participles "
            "after have (have shown) and one negative per clause."
        ),
    ),
    entry(
        "complete_sentences",
        "At most one sentence in three is a fragment under 3 words.",
        "correctness",
        "fragments",
        lambda f: f.sentences > 0 and f.fragments * 3 <= f.sentences,
        lambda f: "Sentences were complete.",
        lambda f: f"{plural(f.fragments, 'fragment')} in {plural(f.sentences, 'sentence')}; answer in full sentences.",
    ),
    # ---- structure ----
    entry(
        "signposting",
        "Uses signposts or causal links (first, next, because, as a result).",
        "clarity",
        "structure",
        lambda f: f.signposts >= 1,
        lambda f: f"Used {plural(f.signposts, 'signpost')} to guide the listener.",
        lambda f: "No signposts; link ideas with first, because, as a result.",
    ),
    entry(
        "concrete_details",
        "Includes concrete details such as numbers, amounts or dates.",
        "clarity",
        "concreteness",
        lambda f: f.numbers >= 1,
        lambda f: f"Gave {plural(f.numbers, 'concrete detail')} (numbers, dates).",
        lambda f: "No numbers or dates; back the point with one concrete detail.",
    ),
    entry(
        "developed_answer",
        "Develops the answer over at least two sentences.",
        "clarity",
        "development",
        lambda f: f.sentences >= 2,
        lambda f: f"Developed the answer over {f.sentences} sentences.",
        lambda f: "The answer was a single sentence; add the reason or the next step.",
    ),
)

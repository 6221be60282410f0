"""The skill catalogue: which skills a user can track, their rubric focus and their checkable criteria.

Every criterion id here has an explicit check in `checks.py` (a test keeps the two in step). Changing a
criterion's text changes the skill's hash, so stored results from the old rubric stay distinguishable.
"""

from __future__ import annotations

from collections.abc import Sequence

from coachup.assessment.types import Criterion, Skill

__all__ = ["SKILLS", "get_skill", "resolve_skills"]

SKILLS: tuple[Skill, ...] = (
    Skill(
        id="clarity_eloquence",
        title="Clarity & eloquence",
        category="communication",
        description="Says things so a listener understands them the first time.",
        focus=("clarity", "correctness"),
        criteria=(
            Criterion("clear_sentence_length", "Sentences average 20 words or fewer."),
            Criterion("no_run_on_sentences", "No sentence runs past 30 words."),
            Criterion("minimal_fillers", "Filler words stay under 3 per 100 words."),
            Criterion("substantive_turns", "Turns carry substance: 8 or more words on average."),
        ),
    ),
    Skill(
        id="conciseness",
        title="Conciseness",
        category="communication",
        description="Makes the point with no padding, repetition or detours.",
        focus=("conciseness",),
        criteria=(
            Criterion("no_padding_phrases", "No padding phrases such as 'the thing is' or 'the reason is because'."),
            Criterion("low_waste_words", "Under 10% of the words are fillers, hedges or padding."),
            Criterion("low_word_repetition", "Content words are not repeated needlessly (under 25% repeats)."),
            Criterion("to_the_point_sentences", "Sentences average 20 words or fewer."),
        ),
    ),
    Skill(
        id="fluency_filler",
        title="Fluency & filler words",
        category="delivery",
        description="Speaks smoothly without fillers, stutters or restarts.",
        focus=("fluency",),
        criteria=(
            Criterion("filler_rate_low", "Fewer than 2 filler words per 100 words."),
            Criterion("no_stutters", "No stutters or restarts (immediately repeated words)."),
            Criterion("varied_vocabulary", "Varied vocabulary: moving type-token ratio of at least 0.6."),
        ),
    ),
    Skill(
        id="pacing",
        title="Pacing",
        category="delivery",
        description="Gives each turn a sensible length and a steady rhythm of sentences.",
        focus=("fluency", "conciseness"),
        criteria=(
            Criterion("balanced_turn_length", "Turns are neither curt nor long-winded (8 to 80 words on average)."),
            Criterion("steady_sentence_rhythm", "The longest sentence is at most 3 times the average length."),
            Criterion("marked_pauses", "Pauses are marked: at least one punctuation mark per 15 words."),
        ),
    ),
    Skill(
        id="correctness_grammar",
        title="Grammar & correctness",
        category="language",
        description="Uses standard grammar: agreement, pronoun case, verb forms, complete sentences.",
        focus=("correctness",),
        criteria=(
            Criterion("subject_verb_agreement", "Subjects and verbs agree (no 'we was', 'they doesn't')."),
            Criterion("pronoun_case", "Subject pronouns are used as subjects (no 'me and him goes')."),
            Criterion(
                "verb_forms", "Verb forms and negation are standard (no 'have show', 'could of', 'don't have nothing')."
            ),
            Criterion("complete_sentences", "At most one sentence in three is a fragment under 3 words."),
        ),
    ),
    Skill(
        id="structure_storytelling",
        title="Structure & storytelling",
        category="communication",
        description="Orders ideas so a listener can follow: context, point, evidence, next step.",
        focus=("clarity", "conciseness"),
        criteria=(
            Criterion("signposting", "Uses signposts or causal links (first, next, because, as a result)."),
            Criterion("concrete_details", "Includes concrete details such as numbers, amounts or dates."),
            Criterion("developed_answer", "Develops the answer over at least two sentences."),
        ),
    ),
    Skill(
        id="confidence_hedging",
        title="Confidence & hedging",
        category="delivery",
        description="States positions directly instead of hedging or seeking approval.",
        focus=("fluency", "clarity"),
        criteria=(
            Criterion("few_hedges", "Fewer than 2 hedges per 100 words."),
            Criterion("no_approval_seeking", "No approval-seeking tags ('if that makes sense', 'right?')."),
            Criterion("commitment_language", "States a position or commitment (will, propose, recommend, decided)."),
        ),
    ),
)

_BY_ID = {s.id: s for s in SKILLS}


def get_skill(skill_id: str) -> Skill | None:
    """The catalogue skill with this id, or None."""
    return _BY_ID.get(skill_id)


def resolve_skills(ids: Sequence[str]) -> tuple[list[Skill], list[str]]:
    """Split `ids` into (known skills, unknown ids), both in request order with duplicates dropped."""
    known: list[Skill] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for raw in ids:
        skill_id = raw.strip()
        if skill_id in seen:
            continue
        seen.add(skill_id)
        skill = _BY_ID.get(skill_id)
        if skill is None:
            unknown.append(skill_id)
        else:
            known.append(skill)
    return known, unknown

"""The built-in skill catalogue (the seed of the store-backed one) and how a catalogue record becomes a Skill.

Each skill picks its criteria from the library (`library.CRITERIA`), so every criterion has a check the
offline assessor can judge; what a skill scores follows from its criteria. Changing a skill's criteria
changes its rubric hash, so stored results from the old rubric stay distinguishable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coachup.assessment.library import CRITERIA
from coachup.assessment.types import MIN_USER_TURNS, MIN_USER_WORDS, Skill
from coachup.errors import ValidationFailed

__all__ = ["SKILLS", "CRITERIA", "PITCH_MIN_WORDS", "get_skill", "resolve_skills", "skill_from_record"]

# A pitch or a story needs room: its criteria (a benefit, proof, a call to action; signposts, a second
# sentence) cannot all be shown in fewer words.
PITCH_MIN_WORDS = 25


def _skill(sid: str, title: str, category: str, description: str, *ids: str, min_words: int = MIN_USER_WORDS) -> Skill:
    return Skill(sid, title, category, description, tuple(CRITERIA[i] for i in ids), min_words, MIN_USER_TURNS)


SKILLS: tuple[Skill, ...] = (
    _skill(
        "clarity_eloquence",
        "Clarity & eloquence",
        "communication",
        "Expresses ideas clearly, avoiding ambiguity and jargon.",
        "short_sentences",
        "no_run_on_sentences",
        "plain_words",
        "precise_wording",
        "minimal_fillers",
        "substantive_turns",
    ),
    _skill(
        "stutter_reduction",
        "Stutter reduction",
        "fluency",
        "Reduces disfluencies (repeated sounds and words, filled pauses, blocks) so speech flows.",
        "few_repetitions",
        "no_word_repetitions",
        "no_sound_repetitions",
        "few_filled_pauses",
        "no_long_pauses",
    ),
    _skill(
        "sales_persuasiveness",
        "Sales persuasiveness",
        "communication",
        "Influences and convinces: benefits over features, proof, feeling and a clear call to action.",
        "states_benefits",
        "listener_focus",
        "backs_with_proof",
        "appeals_to_feeling",
        "clear_call_to_action",
        "confident_claims",
        min_words=PITCH_MIN_WORDS,
    ),
    _skill(
        "conciseness",
        "Conciseness",
        "communication",
        "Makes the point with no padding, repetition or detours.",
        "no_padding_phrases",
        "waste_under_quarter",
        "low_waste_words",
        "low_word_repetition",
        "to_the_point_sentences",
    ),
    _skill(
        "fluency_filler",
        "Fluency & filler words",
        "delivery",
        "Speaks smoothly, without filler words or hesitation.",
        "filler_rate_tolerable",
        "filler_rate_moderate",
        "filler_rate_low",
        "few_hedges",
        "flowing_sentences",
    ),
    _skill(
        "pacing",
        "Pacing",
        "delivery",
        "Gives each turn a sensible length and a steady rhythm of sentences.",
        "balanced_turn_length",
        "steady_sentence_rhythm",
        "marked_pauses",
    ),
    _skill(
        "correctness_grammar",
        "Grammar & correctness",
        "language",
        "Uses standard grammar: agreement, pronoun case, verb forms, complete sentences.",
        "subject_verb_agreement",
        "pronoun_case",
        "verb_forms",
        "complete_sentences",
    ),
    _skill(
        "structure_storytelling",
        "Structure & storytelling",
        "communication",
        "Orders ideas so a listener can follow: context, point, evidence, next step.",
        "signposting",
        "concrete_details",
        "developed_answer",
        min_words=PITCH_MIN_WORDS,
    ),
    _skill(
        "confidence_hedging",
        "Confidence & hedging",
        "delivery",
        "States positions directly instead of hedging or seeking approval.",
        "few_hedges",
        "no_approval_seeking",
        "commitment_language",
    ),
)

_BY_ID = {s.id: s for s in SKILLS}


def get_skill(skill_id: str) -> Skill | None:
    """The built-in skill with this id, or None."""
    return _BY_ID.get(skill_id)


def resolve_skills(ids: Sequence[str], catalogue: Mapping[str, Skill] | None = None) -> tuple[list[Skill], list[str]]:
    """Split `ids` into (known skills, unknown ids), both in request order with duplicates dropped.

    `catalogue` maps skill id to Skill (the store-backed catalogue); without it the built-ins are used.
    """
    known_by_id = _BY_ID if catalogue is None else catalogue
    known: list[Skill] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for raw in ids:
        skill_id = raw.strip()
        if skill_id in seen:
            continue
        seen.add(skill_id)
        skill = known_by_id.get(skill_id)
        if skill is None:
            unknown.append(skill_id)
        else:
            known.append(skill)
    return known, unknown


def skill_from_record(record: Mapping[str, Any]) -> Skill:
    """A Skill from a catalogue record `{"id", "title", "category", "description", "criteria": [ids]}`.

    Criteria must be library ids; raises `ValidationFailed` naming every missing field or unknown id.
    Optional `minWords` / `minTurns` raise the evidence minimum (never below the documented floor).
    """
    if not isinstance(record, Mapping):
        raise ValidationFailed("a skill record must be an object")
    fields = {name: _text(record.get(name)) for name in ("id", "title", "category")}
    missing = [name for name, value in fields.items() if not value]
    raw_ids = record.get("criteria")
    ids: list[str] = list(raw_ids) if isinstance(raw_ids, list) else []
    if not ids or not all(isinstance(i, str) for i in ids):
        missing.append("criteria (a non-empty list of criterion ids)")
    if missing:
        raise ValidationFailed(f"skill record is missing {', '.join(missing)}")
    unknown = [i for i in ids if i not in CRITERIA]
    if unknown:
        raise ValidationFailed(f"unknown criterion id(s) for skill {fields['id']!r}: {', '.join(unknown)}")
    return Skill(
        id=fields["id"],
        title=fields["title"],
        category=fields["category"],
        description=_text(record.get("description")),
        criteria=tuple(CRITERIA[i] for i in dict.fromkeys(ids)),
        min_words=max(MIN_USER_WORDS, _int(record.get("minWords"), MIN_USER_WORDS)),
        min_turns=max(MIN_USER_TURNS, _int(record.get("minTurns"), MIN_USER_TURNS)),
    )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default

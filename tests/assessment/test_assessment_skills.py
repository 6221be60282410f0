"""Skill catalogue, criteria library, records from the store, rubric hashes and turn validation."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import coachup.assessment
from coachup.assessment.heuristic import FACTORS
from coachup.assessment.library import CHECKS, CRITERIA
from coachup.assessment.skills import SKILLS, get_skill, resolve_skills, skill_from_record
from coachup.assessment.types import CATEGORIES, MIN_USER_WORDS, RUBRIC_VERSION, Criterion, Turn
from coachup.errors import ValidationFailed

ROOT = str(Path(coachup.assessment.__file__).resolve().parents[2])
FRONT_END_DEFAULTS = {"clarity_eloquence", "stutter_reduction", "sales_persuasiveness"}
REQUIRED = FRONT_END_DEFAULTS | {
    "conciseness",
    "fluency_filler",
    "pacing",
    "correctness_grammar",
    "structure_storytelling",
    "confidence_hedging",
}


def test_catalogue_holds_the_required_skills_including_the_front_ends_defaults():
    # Given the catalogue / When listing it
    ids = {s.id for s in SKILLS}
    # Then every required skill is there once, each with criteria that name real categories
    assert REQUIRED <= ids and len(ids) == len(SKILLS)
    for skill in SKILLS:
        assert skill.criteria and skill.focus and set(skill.focus) <= set(CATEGORIES)
        assert skill.category in {"communication", "delivery", "language", "fluency"}  # "fluency": front end's
        assert skill.min_words >= MIN_USER_WORDS and skill.min_turns >= 1


def test_the_front_ends_default_skills_have_real_rubrics():
    # Given the three skills the front end tracks by default
    for sid in FRONT_END_DEFAULTS:
        skill = get_skill(sid)
        # Then each has at least five criteria, sentences a person can read, and a focus of its own
        assert skill is not None and len(skill.criteria) >= 5, sid
        assert all(c.text[0].isupper() and c.text.endswith(".") and " " in c.text for c in skill.criteria)
    aspects = {sid: {c.aspect for c in get_skill(sid).criteria} for sid in FRONT_END_DEFAULTS}
    assert not aspects["stutter_reduction"] & aspects["sales_persuasiveness"]
    assert {"stutters", "filled_pauses", "blocks"} <= aspects["stutter_reduction"]
    assert {"benefits", "call_to_action", "proof"} <= aspects["sales_persuasiveness"]


def test_every_library_criterion_has_a_check_and_a_scoring_factor():
    # Given the library / Then each criterion is judged by a check and scored through a declared factor
    assert set(CRITERIA) == set(CHECKS)
    for cid, criterion in CRITERIA.items():
        assert criterion.id == cid and criterion.category in CATEGORIES
        assert (criterion.category, criterion.aspect) in FACTORS, cid
    # And every built-in skill uses library criteria only
    assert all(c is CRITERIA[c.id] for s in SKILLS for c in s.criteria)


def test_skill_from_record_builds_a_skill_from_library_ids():
    # Given a catalogue record naming library criteria (one twice)
    record = {
        "id": "interview_answers",
        "title": "Interview answers",
        "category": "communication",
        "description": "Answers interview questions with a point and proof.",
        "criteria": ["concrete_details", "filler_rate_low", "concrete_details"],
    }
    # When building the skill
    skill = skill_from_record(record)
    # Then it carries the library criteria once each, in order, and scores their categories
    assert skill.id == "interview_answers" and skill.title == "Interview answers"
    assert skill.criterion_ids == ("concrete_details", "filler_rate_low")
    assert skill.focus == ("clarity", "fluency") and skill.min_words == MIN_USER_WORDS
    assert skill_from_record({**record, "minWords": 40}).min_words == 40
    assert skill_from_record({**record, "minWords": 3}).min_words == MIN_USER_WORDS  # never below the floor


def test_skill_from_record_names_unknown_criteria_and_missing_fields():
    base = {"id": "x", "title": "X", "category": "communication", "criteria": ["short_sentences"]}
    with pytest.raises(ValidationFailed, match="made_up, also_made_up"):
        skill_from_record({**base, "criteria": ["short_sentences", "made_up", "also_made_up"]})
    with pytest.raises(ValidationFailed, match="title"):
        skill_from_record({**base, "title": " "})
    with pytest.raises(ValidationFailed, match="criteria"):
        skill_from_record({**base, "criteria": []})
    with pytest.raises(ValidationFailed):
        skill_from_record(["not", "a", "record"])  # type: ignore[arg-type]


def _fresh_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    ).stdout.strip()


def test_rubric_hash_is_stable_and_tracks_the_rubric():
    # Given a skill
    skill = get_skill("conciseness")
    assert skill is not None
    # When hashing it twice, in this process and in a fresh interpreter
    fresh = _fresh_python("from coachup.assessment.skills import get_skill;print(get_skill('conciseness').rubric_hash)")
    # Then the hash is a stable sha256 hex digest, also under its older name
    assert skill.rubric_hash == skill.skill_hash == fresh
    assert len(skill.rubric_hash) == 64 and int(skill.rubric_hash, 16) >= 0
    # And it changes when a criterion changes, but not when the title does
    edited = replace(skill, criteria=skill.criteria + (Criterion("extra", "Something new."),))
    assert edited.rubric_hash != skill.rubric_hash
    assert replace(skill, title="Renamed").rubric_hash == skill.rubric_hash
    assert RUBRIC_VERSION == "v2"


def test_resolve_skills_splits_known_and_unknown_in_order_without_duplicates():
    # Given a request naming known, unknown and repeated ids
    known, unknown = resolve_skills(["pacing", "nope", "stutter_reduction", "pacing", " clarity_eloquence "])
    # Then
    assert [s.id for s in known] == ["pacing", "stutter_reduction", "clarity_eloquence"]
    assert unknown == ["nope"]
    assert get_skill("nope") is None


def test_resolve_skills_uses_a_given_catalogue_instead_of_the_built_ins():
    custom = skill_from_record({"id": "mine", "title": "Mine", "category": "c", "criteria": ["plain_words"]})
    known, unknown = resolve_skills(["mine", "pacing"], {"mine": custom})
    assert [s.id for s in known] == ["mine"] and unknown == ["pacing"]


def test_turn_rejects_an_unknown_role():
    # Given / When / Then
    with pytest.raises(ValidationFailed):
        Turn(index=0, role="robot", content="hi")
    assert Turn(index=1, role="assistant", content="ok").ts is None


def test_importing_the_package_does_not_load_langchain():
    # Given a fresh interpreter / When importing the package, its catalogue and the library
    code = (
        "import sys, coachup.assessment as a; a.get_skill('pacing'); a.skill_from_record("
        "{'id': 'x', 'title': 'X', 'category': 'c', 'criteria': ['plain_words']});"
        "print(any(m.startswith(('langchain', 'flask', 'celery')) for m in sys.modules))"
    )
    # Then neither LangChain nor a framework was imported
    assert _fresh_python(code) == "False"

"""Skill catalogue, skill hashes and turn validation."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import coachup.assessment
from coachup.assessment.checks import CHECKS
from coachup.assessment.skills import SKILLS, get_skill, resolve_skills
from coachup.assessment.types import CATEGORIES, RUBRIC_VERSION, Criterion, Turn
from coachup.errors import ValidationFailed

ROOT = str(Path(coachup.assessment.__file__).resolve().parents[2])
REQUIRED = {
    "clarity_eloquence",
    "conciseness",
    "fluency_filler",
    "pacing",
    "correctness_grammar",
    "structure_storytelling",
    "confidence_hedging",
}


def test_catalogue_holds_the_required_skills_with_valid_focus():
    # Given the catalogue / When listing it
    ids = {s.id for s in SKILLS}
    # Then every required skill is there, ids are unique, and focus names real categories
    assert REQUIRED <= ids
    assert len(ids) == len(SKILLS)
    for skill in SKILLS:
        assert skill.focus and set(skill.focus) <= set(CATEGORIES)
        assert skill.category in {"communication", "delivery", "language"}
        assert skill.criteria


def test_every_criterion_has_an_explicit_check_and_ids_are_unique():
    # Given all criteria of the catalogue
    ids = [c.id for s in SKILLS for c in s.criteria]
    # Then each id is unique and the heuristic has a check for it
    assert len(ids) == len(set(ids))
    assert set(ids) <= set(CHECKS)


def _fresh_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    ).stdout.strip()


def test_skill_hash_is_stable_and_tracks_the_rubric():
    # Given a skill
    skill = get_skill("conciseness")
    assert skill is not None
    # When hashing it twice, in this process and in a fresh interpreter
    fresh = _fresh_python("from coachup.assessment.skills import get_skill;print(get_skill('conciseness').skill_hash)")
    # Then the hash is a stable sha256 hex digest
    assert skill.skill_hash == skill.skill_hash == fresh
    assert len(skill.skill_hash) == 64 and int(skill.skill_hash, 16) >= 0
    # And it changes when a criterion changes, but not when the title does
    edited = replace(skill, criteria=skill.criteria + (Criterion("extra", "Something new."),))
    assert edited.skill_hash != skill.skill_hash
    assert replace(skill, title="Renamed").skill_hash == skill.skill_hash
    assert RUBRIC_VERSION == "v1"


def test_resolve_skills_splits_known_and_unknown_in_order_without_duplicates():
    # Given a request naming known, unknown and repeated ids
    known, unknown = resolve_skills(["pacing", "nope", "conciseness", "pacing", " clarity_eloquence "])
    # Then
    assert [s.id for s in known] == ["pacing", "conciseness", "clarity_eloquence"]
    assert unknown == ["nope"]
    assert get_skill("nope") is None


def test_turn_rejects_an_unknown_role():
    # Given / When / Then
    with pytest.raises(ValidationFailed):
        Turn(index=0, role="robot", content="hi")
    assert Turn(index=1, role="assistant", content="ok").ts is None


def test_importing_the_package_does_not_load_langchain():
    # Given a fresh interpreter / When importing the package and its catalogue
    code = (
        "import sys, coachup.assessment as a; a.get_skill('pacing');"
        "print(any(m.startswith(('langchain', 'flask', 'celery')) for m in sys.modules))"
    )
    # Then neither LangChain nor a framework was imported
    assert _fresh_python(code) == "False"

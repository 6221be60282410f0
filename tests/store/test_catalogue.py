"""The skills catalogue in the store: seeded, upserted and synced by an operator, resolved for the assessor."""

from __future__ import annotations

import pytest

from coachup.errors import ValidationFailed
from coachup.store import create_store
from coachup.store.catalogue import get_skill, list_skills, resolve_skills, sync_skills, unknown_skill_ids, upsert_skill
from coachup.store.skill_records import criteria_library

PITCH = {
    "id": "pitch_clarity",
    "title": "Pitch clarity",
    "category": "communication",
    "description": "Makes a short, concrete pitch.",
    "criteria": ["short_sentences", "concrete_details"],
}


@pytest.fixture
def store(store_url):
    store = create_store(store_url)
    yield store
    store.engine.dispose()


def test_an_operator_adds_a_skill_the_assessor_can_judge(store):
    assert unknown_skill_ids(store, ["pitch_clarity", "clarity_eloquence"]) == ["pitch_clarity"]
    outcome, skill = upsert_skill(store, PITCH)
    assert outcome == "created" and skill["criteria"][0] == {
        "id": "short_sentences",
        "text": criteria_library()["short_sentences"],
    }
    assert upsert_skill(store, PITCH)[0] == "unchanged"
    assert upsert_skill(store, {**PITCH, "title": "Pitch"})[0] == "updated" and get_skill(store, "pitch_clarity")
    skills, unknown = resolve_skills(store, ["pitch_clarity", "nope", "pitch_clarity"])
    assert [s.id for s in skills] == ["pitch_clarity"] and unknown == ["nope"]
    assert [c.id for c in skills[0].criteria] == PITCH["criteria"]


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({**PITCH, "criteria": ["made_up_criterion"]}, "made_up_criterion"),
        ({**PITCH, "criteria": []}, "criteria"),
        ({**PITCH, "id": "Bad Id"}, "id"),
        ({**PITCH, "title": ""}, "title"),
        ("not an object", "object"),
    ],
)
def test_a_bad_record_names_the_problem_and_writes_nothing(store, bad, needle):
    with pytest.raises(ValidationFailed, match=needle):
        upsert_skill(store, bad)
    assert get_skill(store, "pitch_clarity") is None


def test_sync_is_all_or_nothing_and_can_retire_unlisted_skills(store):
    from coachup.store.txn import unknown_skills

    before = {s["id"] for s in list_skills(store)}
    with store.engine.connect() as conn:
        assert unknown_skills(conn, ["conciseness"]) == []  # the intake's check now holds a copy of the catalogue
    with pytest.raises(ValidationFailed):
        sync_skills(store, [PITCH, {**PITCH, "id": "other", "criteria": ["nope"]}])
    assert get_skill(store, "pitch_clarity") is None
    report = sync_skills(store, [PITCH, {**PITCH, "id": "clarity_eloquence"}], deactivate_missing=True)
    assert report["created"] == ["pitch_clarity"] and report["updated"] == ["clarity_eloquence"]
    assert set(report["deactivated"]) == before - {"clarity_eloquence"}
    assert {s["id"] for s in list_skills(store)} == {"pitch_clarity", "clarity_eloquence"}
    assert unknown_skill_ids(store, ["conciseness"]) == ["conciseness"]  # retired: no longer trackable
    with store.engine.connect() as conn:  # and the intake's check in this process refuses it at once
        assert unknown_skills(conn, ["conciseness"]) == ["conciseness"]
    assert sync_skills(store, [PITCH])["unchanged"] == ["pitch_clarity"]

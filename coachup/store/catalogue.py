"""The skills catalogue (read, upsert, sync, resolve) and cursor-paginated transcripts, over a `Store`.

The catalogue is the `skills` table, seeded from the built-in skills and kept in step with the front end's
catalogue by an operator (`PUT /api/v1/ops/skills/{id}`, `POST /api/v1/ops/skills/sync`, docs/skills.md).
A session's tracked skills and `COACHUP_DEFAULT_SKILLS` resolve here, so a skill added by an operator is
assessed without a deploy.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from sqlalchemy import select

from coachup.assessment.types import Skill
from coachup.errors import ValidationFailed

from .models import SkillRow, TranscriptTurn
from .repo import Store, _iso
from .skill_records import criteria_library, parse_record, skill_from_record

__all__ = [
    "list_skills",
    "get_skill",
    "upsert_skill",
    "sync_skills",
    "unknown_skill_ids",
    "resolve_skills",
    "page_turns",
    "encode_cursor",
    "decode_cursor",
    "BadCursor",
]


class BadCursor(ValueError):
    """A cursor this API did not issue."""


def _skill_dict(row: SkillRow) -> dict:
    return {
        "id": row.id,
        "title": row.title,
        "category": row.category,
        "description": row.description,
        "criteria": row.criteria,
    }


def list_skills(store: Store, *, category: str | None = None, include_inactive: bool = False) -> list[dict]:
    """Active skills (every skill with `include_inactive`) ordered by id, optionally of one category."""
    query = select(SkillRow).order_by(SkillRow.id)
    if not include_inactive:
        query = query.where(SkillRow.active.is_(True))
    if category:
        query = query.where(SkillRow.category == category)
    with store.session() as s:
        return [_skill_dict(r) for r in s.scalars(query)]


def get_skill(store: Store, skill_id: str) -> dict | None:
    with store.session() as s:
        row = s.get(SkillRow, skill_id)
        return _skill_dict(row) if row is not None and row.active else None


def unknown_skill_ids(store: Store, ids: Sequence[str]) -> list[str]:
    """The ids in `ids` that name no active catalogue skill, in request order."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    with store.session() as s:
        known = set(s.scalars(select(SkillRow.id).where(SkillRow.id.in_(wanted), SkillRow.active.is_(True))))
    return [i for i in wanted if i not in known]


def resolve_skills(store: Store, ids: Sequence[str]) -> tuple[list[Skill], list[str]]:
    """(assessable skills, unknown or unusable ids), in request order with duplicates dropped."""
    wanted = list(dict.fromkeys(i.strip() for i in ids))
    with store.session() as s:
        rows = {r.id: r for r in s.scalars(select(SkillRow).where(SkillRow.id.in_(wanted), SkillRow.active.is_(True)))}
    skills, unknown = [], []
    for skill_id in wanted:
        skill = _assessable(rows.get(skill_id))
        if skill is None:
            unknown.append(skill_id)
        else:
            skills.append(skill)
    return skills, unknown


def upsert_skill(store: Store, raw: dict) -> tuple[str, dict]:
    """Add or update one skill from a catalogue record; ("created" | "updated" | "unchanged", the skill).

    Raises `ValidationFailed` for a malformed record or an unknown criterion id (nothing written).
    """
    return _upsert_many(store, [raw])[0]


def sync_skills(store: Store, raws: list, *, deactivate_missing: bool = False) -> dict:
    """Upsert every record in one transaction (all or nothing); optionally retire skills not listed.

    Returns the counts and the ids per outcome. A retired skill stays in stored results but can no
    longer be tracked (`active` false); listing it again brings it back.
    """
    outcomes = _upsert_many(store, raws, deactivate_missing=deactivate_missing)
    if any(outcome == "deactivated" for outcome, _ in outcomes):
        from .txn import forget_catalogue

        forget_catalogue(store.engine)  # refused here at once; other processes' copies last up to 30 s
    report: dict = {"created": [], "updated": [], "unchanged": [], "deactivated": []}
    for outcome, skill in outcomes:
        report[outcome].append(skill["id"])
    return report


def _upsert_many(store: Store, raws: list, *, deactivate_missing: bool = False) -> list[tuple[str, dict]]:
    records = [parse_record(r) for r in raws]
    if len({r["id"] for r in records}) != len(records):
        raise ValidationFailed("a skill id appears twice")
    texts = criteria_library()
    for record in records:
        skill_from_record(record)  # the assessor can judge every criterion, or nothing is written
    out = []
    with store.session() as s, s.begin():
        for record in records:
            criteria = [{"id": c, "text": texts.get(c, c)} for c in record["criteria"]]
            row = s.get(SkillRow, record["id"])
            if row is None:
                row = SkillRow(active=True, **{**record, "criteria": criteria})
                s.add(row)
                out.append(("created", _skill_dict(row)))
                continue
            changed = (row.title, row.category, row.description, row.criteria, row.active) != (
                record["title"],
                record["category"],
                record["description"],
                criteria,
                True,
            )
            row.title, row.category, row.description = record["title"], record["category"], record["description"]
            row.criteria, row.active = criteria, True
            out.append(("updated" if changed else "unchanged", _skill_dict(row)))
        if deactivate_missing:
            listed = {r["id"] for r in records}
            for row in s.scalars(select(SkillRow).where(SkillRow.active.is_(True), SkillRow.id.not_in(listed))):
                row.active = False
                out.append(("deactivated", _skill_dict(row)))
    return out


def _assessable(row: SkillRow | None) -> Skill | None:
    if row is None:
        return None
    try:
        return skill_from_record(_record(row))
    except ValidationFailed:  # a stored skill whose criteria left the library cannot be assessed
        return None


def _record(row: SkillRow) -> dict:
    return {
        "id": row.id,
        "title": row.title,
        "category": row.category,
        "description": row.description,
        "criteria": [c["id"] if isinstance(c, dict) else c for c in row.criteria],
    }


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"t:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor(cursor) from None
    if not raw.startswith("t:") or not raw[2:].isdigit():
        raise BadCursor(cursor)
    return int(raw[2:])


def page_turns(
    store: Store, session_id: str, *, group_id: str | None, limit: int, after: int | None
) -> tuple[list[dict], str | None]:
    """Up to `limit` turns of a session (and group), oldest first, after the cursor row; plus the next cursor.

    Ordered by the row id (insertion order), which is stable under concurrent ingest: a page never
    repeats or skips a row that existed when the previous page was read.
    """
    query = select(TranscriptTurn).where(TranscriptTurn.session_id == session_id)
    if group_id:
        query = query.where(TranscriptTurn.group_id == group_id)
    if after is not None:
        query = query.where(TranscriptTurn.id > after)
    query = query.order_by(TranscriptTurn.id).limit(limit + 1)
    with store.session() as s:
        rows = list(s.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "messageId": r.message_id,
            "groupId": r.group_id,
            "seq": r.seq,
            "role": r.role,
            "content": r.content,
            "ts": _iso(r.ts),
            "createdAt": _iso(r.created_at),
        }
        for r in rows
    ]
    return items, (encode_cursor(rows[-1].id) if more and rows else None)

"""Read-side queries for the skills catalogue and cursor-paginated transcripts (over a `Store`)."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import select

from .models import SkillRow, TranscriptTurn
from .repo import Store, _iso

__all__ = ["list_skills", "get_skill", "page_turns", "encode_cursor", "decode_cursor", "BadCursor"]


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


def list_skills(store: Store, *, category: str | None = None) -> list[dict]:
    """Active skills ordered by id, optionally of one category."""
    query = select(SkillRow).where(SkillRow.active.is_(True)).order_by(SkillRow.id)
    if category:
        query = query.where(SkillRow.category == category)
    with store.session() as s:
        return [_skill_dict(r) for r in s.scalars(query)]


def get_skill(store: Store, skill_id: str) -> dict | None:
    with store.session() as s:
        row = s.get(SkillRow, skill_id)
        return _skill_dict(row) if row is not None and row.active else None


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

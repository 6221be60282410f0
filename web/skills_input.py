"""The `trackedSkills` field of ingest and run: skill ids (or the front end's `{skillId}` objects), each one
a skill of the catalogue; an unknown id is a 400 that names it."""

from __future__ import annotations

from coachup.store.catalogue import unknown_skill_ids

from .errors import ApiError
from .validation import opt_str_list

__all__ = ["tracked_skills_field", "unknown_skill_error", "MAX_TRACKED_SKILLS"]

MAX_TRACKED_SKILLS = 20


def unknown_skill_error(unknown: list[str]) -> ApiError:
    """The 400 naming skill ids the catalogue does not hold."""
    return ApiError(
        400,
        "unknown_skill",
        f"unknown skill ids: {', '.join(unknown)[:300]} (GET /api/v1/skills lists the catalogue)",
    )


def tracked_skills_field(data: dict, store) -> list[str] | None:
    """The validated ids (None when the field is absent; an empty list clears the session's choice).

    `store` None: only the shape is checked here; the caller checks the ids against the catalogue in its own
    write transaction (`check_skills` of the intake store calls, answered with `unknown_skill_error`)."""
    tracked = opt_str_list(data, "trackedSkills", max_items=MAX_TRACKED_SKILLS)
    if tracked and store is not None:
        unknown = unknown_skill_ids(store, tracked)
        if unknown:
            raise unknown_skill_error(unknown)
    return tracked

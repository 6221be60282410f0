"""Bring a session's stored summary up to date with its stored turns: the body of the summary job.

Versioned and race-free through the store's unique (session, version) constraint: a writer that loses the race
for version N+1 reads again and either finds its turns already covered (nothing to do) or summarises on top of
the winner's version. A redelivered job finds its window covered and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coachup.errors import UpstreamUnavailable
from coachup.store.summaries import SummaryRecord, SummaryStore

from .service import SummaryResult

__all__ = ["RefreshOutcome", "refresh_summary", "ATTEMPTS"]

ATTEMPTS = 3  # writers racing for one version; beyond that the job retries through Celery


@dataclass(frozen=True)
class RefreshOutcome:
    status: str  # written | up_to_date | nothing_new
    record: SummaryRecord | None
    result: SummaryResult | None = None


def refresh_summary(
    sums: SummaryStore,
    session_id: str,
    through_turn: int,
    summarise: Callable[[str, Sequence[tuple[str, str]]], SummaryResult],
) -> RefreshOutcome:
    """Summarise the session's turns up to at least `through_turn` (and whatever came since) once."""
    for _ in range(ATTEMPTS):
        latest = sums.latest(session_id)
        covered = latest.turns_covered if latest else 0
        if covered >= through_turn:
            return RefreshOutcome("up_to_date", latest)
        turns = sums.turns_after(session_id, covered)
        if not turns:
            return RefreshOutcome("nothing_new", latest)
        result = summarise(latest.text if latest else "", turns)
        if not result.text:
            return RefreshOutcome("nothing_new", latest, result)
        record = sums.add_version(
            session_id,
            result.text,
            after=latest,
            turns_covered=covered + len(turns),
            source="job",
            provider=result.provider,
            model=result.model,
        )
        if record is not None:
            return RefreshOutcome("written", record, result)
    raise UpstreamUnavailable("another writer kept taking the next summary version", type="summary_version_race")

"""The library of checkable criteria: every criterion a skill may use, each with the check that judges it.

A catalogue skill (built in or added by an operator) picks its criteria from here by id, so the offline
assessor can judge every criterion of every skill. Standard library only.
"""

from __future__ import annotations

from coachup.assessment import criteria_delivery, criteria_language, criteria_sales
from coachup.assessment.checks import Check, Entry
from coachup.assessment.types import Criterion

__all__ = ["CRITERIA", "CHECKS"]


def _index(*groups: tuple[Entry, ...]) -> tuple[dict[str, Criterion], dict[str, Check]]:
    criteria: dict[str, Criterion] = {}
    checks: dict[str, Check] = {}
    for group in groups:
        for item in group:
            if item.criterion.id in criteria:  # an import-time programming error, never user input
                raise RuntimeError(f"criterion id {item.criterion.id!r} is defined twice")
            criteria[item.criterion.id] = item.criterion
            checks[item.criterion.id] = item.check
    return criteria, checks


CRITERIA, CHECKS = _index(criteria_language.ENTRIES, criteria_delivery.ENTRIES, criteria_sales.ENTRIES)

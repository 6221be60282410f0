"""How the offline assessor judges a library criterion, and the short sentences that explain the verdict.

A check reads only `Features`, so every met/unmet verdict can be traced to a count. Praise and advice
cite counts and lexicon words, never the speaker's sentences, and never a statistic that means nothing:
counts are pluralised ("no filler words", "1 word"), and "mostly X" is said only of a real majority.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coachup.assessment.features import Features
from coachup.assessment.types import Criterion, CriterionVerdict

__all__ = ["Check", "Entry", "entry", "per100", "plural", "mix", "judge_criteria", "explain"]

MAX_LINES = 3  # highlights and recommendations per skill


@dataclass(frozen=True)
class Check:
    """`passes(features)` decides the criterion; `praise`/`advice` explain a pass/fail with counts."""

    passes: Callable[[Features], bool]
    praise: Callable[[Features], str]
    advice: Callable[[Features], str]


@dataclass(frozen=True)
class Entry:
    """One library criterion with the check that judges it."""

    criterion: Criterion
    check: Check


def entry(
    cid: str,
    text: str,
    category: str,
    aspect: str,
    passes: Callable[[Features], bool],
    praise: Callable[[Features], str],
    advice: Callable[[Features], str],
) -> Entry:
    return Entry(Criterion(cid, text, category, aspect), Check(passes, praise, advice))


def per100(f: Features, count: float) -> float:
    return 100.0 * f.rate(count)


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "no filler words", "1 filler word", "3 filler words"."""
    if n == 0:
        return f"no {many or word + 's'}"
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


def _label(text: str) -> str:
    return " ".join("I" if w == "i" else w for w in text.split())


def mix(counts: dict[str, int]) -> str:
    """Which entries made up a count: "all 'um'", "mostly 'um' (5 of 7)", or, with no majority,
    "6 different ones, most often 'like' and 'um'" (ties alphabetical)."""
    total = sum(counts.values())
    if not total:
        return ""
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    top = ranked[0]
    if len(ranked) == 1:
        return f"all '{_label(top)}'"
    if counts[top] * 2 > total:
        return f"mostly '{_label(top)}' ({counts[top]} of {total})"
    return f"{len(ranked)} different ones, most often " + " and ".join(f"'{_label(k)}'" for k in ranked[:2])


def judge_criteria(criteria: Sequence[Criterion], f: Features, checks: dict[str, Check]) -> list[CriterionVerdict]:
    """One verdict per criterion, in rubric order; a criterion without a check is not judged (met None)."""
    verdicts = []
    for c in criteria:
        check = checks.get(c.id)
        met = None if check is None else bool(f.words and check.passes(f))
        verdicts.append(CriterionVerdict(c.id, c.text, met))
    return verdicts


def explain(
    criteria: Sequence[Criterion], verdicts: Sequence[CriterionVerdict], f: Features, checks: dict[str, Check]
) -> tuple[list[str], list[str], list[str]]:
    """(feedback, highlights, recommendations) for one skill, each citing counts only.

    One line per aspect: of a tiered pair (6 fillers per 100 words, then 2) the praise of the strictest
    tier met and the advice of the first tier missed. Feedback leads with what to work on (the first two
    pieces of advice), else the first strength; the chain puts the level sentence in front of it.
    """
    aspect = {c.id: (c.category, c.aspect) for c in criteria}
    praise: dict[tuple[str, str] | str, str] = {}
    advice: dict[tuple[str, str] | str, str] = {}
    for v in verdicts:
        key = aspect.get(v.id, v.id)
        if v.met is True:
            praise.pop(key, None)  # a stricter tier met later replaces the looser one's praise
            praise[key] = checks[v.id].praise(f)
        elif v.met is False and key not in advice:
            advice[key] = checks[v.id].advice(f)
    strengths, todo = list(praise.values()), list(advice.values())
    feedback = todo[:2] if todo else strengths[:1]
    return feedback, strengths[:MAX_LINES], todo[:MAX_LINES]

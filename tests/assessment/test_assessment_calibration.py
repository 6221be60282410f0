"""Calibration: the heuristic ranks answers per category the way a coach did (Spearman rank correlation).

The data set is small (12 answers, five of them tied at 5 everywhere), so the bound is a floor that
catches a regression, not a claim of accuracy. Achieved when written: correctness 0.962, clarity 0.960,
conciseness 0.940, fluency 0.913; unchanged by rubric v2 (the category scores are the whole answer's,
from the same factors; skill-only factors such as jargon or benefits do not enter them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from coachup.assessment.features import extract_features
from coachup.assessment.heuristic import category_scores
from coachup.assessment.types import CATEGORIES

DATA = Path(__file__).parent / "data" / "assessment-calibration.jsonl"  # a copy of shared/data, kept with its test
MIN_SPEARMAN = 0.85


def average_ranks(values: list[float]) -> list[float]:
    """1-based ranks; tied values share the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rho with ties: the Pearson correlation of the average ranks."""
    rx, ry = average_ranks(xs), average_ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / var if var else 0.0


def test_spearman_matches_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert average_ranks([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]
    # Textbook case without ties: d = (0, 1, -1, 0, 0) -> 1 - 6*2 / (5*24) = 0.9
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)


@pytest.mark.skipif(not DATA.exists(), reason=f"calibration data not found at {DATA}")
def test_heuristic_ranks_answers_like_the_coach():
    # Given the coach-labelled transcripts
    items = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    assert len(items) >= 10
    # When the heuristic scores each one
    scored = [
        category_scores(extract_features([t["content"] for t in item["turns"] if t["role"] == "user"]))
        for item in items
    ]
    # Then, per category, its ranking agrees clearly with the coach's
    rho = {c: spearman([s[c] for s in scored], [item["labels"][c] for item in items]) for c in CATEGORIES}
    print("\nSpearman per category:", {c: round(v, 3) for c, v in rho.items()})
    for category, value in rho.items():
        assert value >= MIN_SPEARMAN, f"{category}: Spearman {value:.3f} < {MIN_SPEARMAN} ({rho})"

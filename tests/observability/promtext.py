"""Read samples back out of a Prometheus text exposition (tests only)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["samples", "value"]


def samples(text: str) -> list[tuple[str, dict, float]]:
    return [(s.name, dict(s.labels), s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(text: str, name: str, **labels) -> float:
    """Sum of the samples named `name` whose labels include `labels` (0 when none)."""
    return sum(v for n, lbl, v in samples(text) if n == name and all(lbl.get(k) == str(x) for k, x in labels.items()))

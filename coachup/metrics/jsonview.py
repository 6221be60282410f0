"""`/api/metrics`: the same samples as `/metrics`, as JSON for humans (one object per family)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

__all__ = ["as_json"]


def _number(value: float):
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return int(value) if float(value).is_integer() else round(value, 6)


def as_json(registry: CollectorRegistry) -> dict:
    """`{family: {"type", "help", "samples": [{"name", "labels", "value"}]}}`, families with no sample left out."""
    out: dict[str, dict] = {}
    for family in registry.collect():
        samples = [
            {"name": s.name, "labels": dict(s.labels), "value": _number(s.value)}
            for s in family.samples
            if not s.name.endswith("_created")
        ]
        if samples:
            out[family.name] = {"type": family.type, "help": family.documentation, "samples": samples}
    return dict(sorted(out.items()))

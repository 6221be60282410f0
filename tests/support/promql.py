"""PromQL helpers for the deploy tests: metric names an expression reads, names the code exports, promtool.

`metric_names(expr)` is a small lexer, not a parser (promtool parses): it drops strings, label matchers,
ranges and grouping clauses, then keeps identifiers that are not functions or keywords.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry

from coachup.metrics import Metrics
from tests.support.services import require

__all__ = ["BUILTIN_SERIES", "exported_names", "metric_names", "promtool", "run_promtool"]

# series Prometheus itself writes for every scrape target (not exported by the code, always present)
BUILTIN_SERIES = frozenset({"up"})
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("_sum", "_count", ""),
}


def metric_names(expr: str) -> set[str]:
    """Metric names read by a PromQL expression (`$__rate_interval`-style Grafana variables allowed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # dashboard variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def exported_names() -> set[str]:
    """Every series name the code exports, from the families registered by `Metrics(CollectorRegistry())`."""
    names = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        names.update(family.name + sfx for sfx in _SUFFIXES.get(family.type, ("",)))
    return names


def promtool() -> str:
    """Path of promtool (Debian package `prometheus`, installed by `.ci/run`); skips on a laptop without it, fails in CI."""
    path = shutil.which("promtool")
    # a laptop without it skips, with the install command; CI fails (.ci/run installs it)
    require(path is not None, "promtool is missing: apt-get install prometheus (.ci/run does it)")
    assert path is not None
    return path


def run_promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """promtool with `args`; output captured as text."""
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)

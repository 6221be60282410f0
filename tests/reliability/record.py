"""The drills' recorded numbers: each test appends one row; `docs/reliability.md` is generated from them.

Rows go to `$COACHUP_RELIABILITY_RESULTS` (JSON lines) when set, else to `<tmp>/coachup-reliability.jsonl`;
`python -m tests.reliability.report` turns the file into the table of `docs/reliability.md`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

__all__ = ["record", "results_path"]


def results_path() -> Path:
    return Path(
        os.environ.get("COACHUP_RELIABILITY_RESULTS") or Path(tempfile.gettempdir()) / "coachup-reliability.jsonl"
    )


def record(kind: str, name: str, **numbers) -> None:
    """Append one row: `kind` (fault | attack | auth | limit ...), the scenario `name`, and its numbers."""
    row = {"kind": kind, "name": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **numbers}
    with results_path().open("a") as fh:
        fh.write(json.dumps(row, sort_keys=False) + "\n")

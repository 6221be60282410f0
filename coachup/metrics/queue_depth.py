"""The latest queue-depth sample, shared by a worker's main process with its prefork children.

The main process reads depths from the broker (`workers.depths`, one implementation for every reader) and
writes them here; children read this file instead of asking the broker on every task. Nothing here runs
at import.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_snapshot", "read_snapshot", "SNAPSHOT_NAME"]

SNAPSHOT_NAME = "queue-depth.json"


def write_snapshot(folder: Path, depths: Mapping[str, int]) -> None:
    """Publish the latest sample for prefork children (they read it instead of asking the broker)."""
    tmp = folder / f".{SNAPSHOT_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps({"at": time.time(), "depths": dict(depths)}))
    os.replace(tmp, folder / SNAPSHOT_NAME)


def read_snapshot(folder: Path | None, queue: str, *, max_age_s: float = 300) -> int | None:
    """The last sampled depth of `queue`, or None when there is no recent sample."""
    if folder is None:
        return None
    try:
        data = json.loads((folder / SNAPSHOT_NAME).read_text())
    except (OSError, ValueError):
        return None
    if time.time() - float(data.get("at", 0)) > max_age_s:
        return None
    value = data.get("depths", {}).get(queue)
    return int(value) if isinstance(value, int) else None

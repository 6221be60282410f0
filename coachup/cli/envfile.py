"""`coachup --env-file PATH`: a deployment's settings, read from a dotenv-style file.

`KEY=VALUE` lines (an optional `export ` prefix, `#` comments, values optionally in matching quotes); the
format of `deploy/compose/env.example` and of a Kubernetes ConfigMap dumped with `kubectl`. Variables
already set in the shell win, as with docker compose, and the banner on stderr shows what was used.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["EnvFileError", "read_env_file"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EnvFileError(ValueError):
    """A line that is not `KEY=VALUE`; the message names the file and the line number."""


def read_env_file(path: Path) -> dict[str, str]:
    """The variables `path` sets, in order (the last assignment of a name wins)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _NAME.match(name):
            raise EnvFileError(f"{path}:{number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values

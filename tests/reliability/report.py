"""Writes the fault/attack table of `docs/reliability.md` from the numbers the reliability tests recorded.

    python -m tests.reliability.report RESULTS.jsonl docs/reliability.md

(`make reliability` runs the tests and then this.) The table replaces whatever sits between the
`<!-- reliability-table -->` markers; the last row recorded for each scenario wins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["render", "main"]

BEGIN, END = "<!-- reliability-table:begin -->", "<!-- reliability-table:end -->"
PROMISES = {
    "1.": "job runs again and finishes; exactly one result",
    "2.": "new worker finishes it after the visibility timeout; one result; unacked set empty",
    "3.": "all 200 finish, workers resume without restart, nothing doubled",
    "3b.": "the scheduler publishes the job again, once; it finishes with one result",
    "4.": "every request accepted (200) within 2 s, jobs kept in the outbox; each published once when it is back",
    "5.": "jobs retry and finish; beyond the budget: dead-lettered, then redriven once, never lost",
    "6.": "warm shutdown: the task finishes, exit code 0",
    "7.": "messages come back after the visibility timeout and are processed once",
    "8.": "N results, zero duplicates, zero lost",
    "10.": "one scheduler sends, the other says it is inert; each group assessed once (job runs, skill calls)",
    "11.": "one published message per group; every request answered with that job",
    "12.": "second run refused; a dead worker started again; SIGHUP leaves no process",
    "13.": "every child and the broker exit with the supervisor",
    "14.": "every answer within 2 s, no 5xx; after SIGCONT each accepted job's work runs once (summaries, skill calls)",
    "15.": "answered 200 with its job at once; the job's work runs once when the broker is back",
    "forged": "401 unauthenticated for each",
    "unknown-kid": "bounded JWKS fetches",
    "pickle": "refused, not executed; worker keeps consuming",
    "schemathesis": "no 5xx, responses match the document",
    "issue 16 inputs": "every answer a typed 4xx JSON (or a 2xx), never a 5xx",
    "poisoned broker": "quarantined or dead-lettered; the same worker PID keeps consuming and runs jobs",
    "leak": "no raw id, text or token anywhere",
    "oversized": "431",
    "body": "413",
    "1,500": "413",
    "100 MiB": "413 without reading the body",
    "200 MiB": "413 while it streams; no worker grows by the upload",
    "trickling": "dropped after the server's timeout; memory flat; the API answers meanwhile",
}
_SKIP = {"kind", "name", "at"}


def _promise(name: str) -> str:
    # a numbered scenario by its number first ("14." must not take "4."'s promise), then by a word in its name
    for prefix, text in PROMISES.items():
        if name.startswith(prefix):
            return text
    for prefix, text in PROMISES.items():
        if prefix in name:
            return text
    return ""


def render(rows: list[dict]) -> str:
    latest: dict[str, dict] = {}
    for row in rows:
        latest[row["name"]] = row
    order = {"fault": 0, "auth": 1, "limit": 2, "attack": 3}
    lines = ["| kind | scenario | must hold | observed | recorded (UTC) |", "| --- | --- | --- | --- | --- |"]
    for row in sorted(latest.values(), key=lambda r: (order.get(r["kind"], 9), r["name"])):
        numbers = ", ".join(f"{k} {v}" for k, v in row.items() if k not in _SKIP)
        lines.append(f"| {row['kind']} | {row['name']} | {_promise(row['name'])} | {numbers} | {row['at']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    results, doc = Path(argv[0]), Path(argv[1])
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + render(rows) + "\n" + text[end:])
    print(f"{doc}: {len({r['name'] for r in rows})} scenarios from {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

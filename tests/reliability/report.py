"""Writes the fault/attack table of `docs/reliability.md` from the numbers the reliability tests recorded.

    python -m tests.reliability.report RESULTS.jsonl docs/reliability.md [--keep]

(`make reliability` runs the tests and then this.) The table replaces whatever sits between the
`<!-- reliability-table -->` markers; the last row recorded for each scenario wins. `--keep` keeps the rows
already in the document whose scenario the results do not have (after re-running some drills only).

The figures are what the drills observed (jobs done, stored results, task runs and completions read from
the workers' logs, provider calls, statuses the server gave), never a value a constraint or the test itself
fixes: `CONSTRAINED` lists the names such a value went by, and `check_table` (a test runs it on the
document) refuses them, as well as any row that is not exactly this generator's output.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

__all__ = ["render", "parse", "check_table", "main", "CONSTRAINED"]

BEGIN, END = "<!-- reliability-table:begin -->", "<!-- reliability-table:end -->"
PROMISES = {
    "1.": "job runs again (2 runs, 1 completed) and finishes with one result",
    "2.": "new worker runs it after the visibility timeout (2 runs, 1 completed); unacked set empty",
    "3.": "all 200 finish, each run by a worker, workers resume without restart; reruns counted",
    "3b.": "the scheduler publishes the job again, once; it finishes with one result",
    "3c.": "published again by the pop-window watch within seconds (not the sweep's 300 s); one run, one result",
    "4.": "every request accepted (200) within 2 s, jobs kept in the outbox; each published once when it is back",
    "5.": "jobs retry and finish; beyond the budget: dead-lettered, then redriven; every job done",
    "6.": "warm shutdown: the task finishes, exit code 0",
    "7.": "messages come back after the visibility timeout; the new worker runs each job once",
    "8.": "every job done with its result, each run by a worker; reruns counted",
    "10.": "one scheduler sends, the other says it is inert; each group assessed once (job runs, skill calls)",
    "11.": "one published message per group; every request answered with that job",
    "12.": "second run refused; a dead worker started again; SIGHUP leaves no process",
    "13.": "every child and the broker exit with the supervisor",
    "14.": "same worker PIDs after every restart, each consuming after the last; every job done",
    "15.": "the letter is recorded once from the store's ledger; the redriven job finishes with one result",
    "rotation": "the rotated key is accepted within 1 s; bounded JWKS fetches",
    "16.": "every answer within 2 s, no 5xx; after SIGCONT each accepted job's work runs once (summaries, skill calls)",
    "17.": "answered 200 with its job at once; the job's work runs once when the broker is back",
    "18.": "one copy runs, the other is deferred by the run lease; provider calls = skills x 1; one result",
    "19.": "the deferred copy on the same host sees the holder gone and takes the lease over before it expires; the job done, one result",
    "forged": "401 unauthenticated for each",
    "unknown-kid": "bounded JWKS fetches",
    "pickle": "refused, not executed; worker keeps consuming",
    "schemathesis": "no 5xx; every 4xx the JSON error envelope; responses match the document; with a token, no 401/403",
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
# figures a unique constraint, the row ledger or the test's own assertion fixes: never recorded
CONSTRAINED = {"duplicates", "lost", "5xx", "outcome"}
HEADER = ["| kind | scenario | must hold | observed | recorded (UTC) |", "| --- | --- | --- | --- | --- |"]


def _promise(name: str) -> str:
    number = name.split(" ", 1)[0]
    for prefix, text in PROMISES.items():
        numbered = re.fullmatch(r"\d+\w*\.", prefix)  # "1." is fault 1, never a part of "11."
        if number == prefix if numbered else prefix in name:
            return text
    return ""


def _order(row: dict) -> tuple:
    """Faults first, in their numbers' order (3 < 3b < 10), then auth, limits and attacks by name."""
    kinds = {"fault": 0, "auth": 1, "limit": 2, "attack": 3}
    match = re.match(r"(\d+)(\w*)\.", row["name"])
    number = (int(match.group(1)), match.group(2)) if match else (0, "")
    return (kinds.get(row["kind"], 9), number, row["name"])


def render(rows: list[dict]) -> str:
    latest: dict[str, dict] = {}
    for row in rows:
        latest[row["name"]] = row
    lines = list(HEADER)
    for row in sorted(latest.values(), key=_order):
        numbers = ", ".join(f"{k} {v}" for k, v in row.items() if k not in _SKIP)
        lines.append(f"| {row['kind']} | {row['name']} | {_promise(row['name'])} | {numbers} | {row['at']} |")
    return "\n".join(lines)


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse(table: str) -> list[dict]:
    """The rows of a rendered table, back as recorded rows (numbers as numbers)."""
    rows = []
    for line in table.strip().splitlines()[len(HEADER) :]:
        kind, name, _promise_text, numbers, at = (cell.strip() for cell in line.strip().strip("|").split(" | "))
        row: dict = {"kind": kind, "name": name, "at": at}
        for pair in filter(None, numbers.split(", ")):
            key, _, value = pair.partition(" ")
            row[key] = _value(value)
        rows.append(row)
    return rows


def table_of(doc_text: str) -> str:
    return doc_text[doc_text.index(BEGIN) + len(BEGIN) : doc_text.index(END)].strip()


def check_table(table: str) -> list[str]:
    """What makes `table` other than this generator's output from observed figures (empty: nothing)."""
    problems = []
    rows = parse(table)
    if render(rows) != table.strip():
        problems.append("the table is not render() of its own rows: edited by hand, or an older generator")
    for row in rows:
        fixed = CONSTRAINED & set(row)
        if fixed:
            problems.append(f"{row['name']}: {sorted(fixed)} are fixed by a constraint or the test, not observed")
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(row["at"])):
            problems.append(f"{row['name']}: recorded time {row['at']!r}")
        if len(row) <= len(_SKIP):
            problems.append(f"{row['name']}: no figure recorded")
    return problems


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    results, doc = (Path(a) for a in argv if a != "--keep")
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    text = doc.read_text()
    kept = [r for r in parse(table_of(text)) if keep and r["name"] not in {n["name"] for n in rows}]
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + render(kept + rows) + "\n" + text[end:])
    print(f"{doc}: {len({r['name'] for r in rows})} scenarios from {results}, {len(kept)} kept")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`docs/reliability.md`'s table is the generator's output (`tests/reliability/report.py`) from what the drills
observed: not edited by hand, and holding no figure a constraint or the test itself fixes."""

from __future__ import annotations

import json
from pathlib import Path

from .report import BEGIN, END, check_table, main, parse, render, table_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
ROWS = [
    {"kind": "fault", "name": "1. SIGKILL pool child mid-assessment", "at": "2026-11-30T01:00:00Z", "runs": 2},
    {"kind": "limit", "name": "1,500 form parts", "at": "2026-11-30T01:00:01Z", "status": 413},
    {"kind": "attack", "name": "schemathesis fuzz, valid token", "at": "2026-11-30T01:00:02Z", "acceptedS": 0.25},
]


def test_the_documents_table_is_the_generators_output_from_observed_figures():
    problems = check_table(table_of(DOC.read_text()))
    assert problems == [], "regenerate it: make reliability (see docs/reliability.md)\n" + "\n".join(problems)


def test_a_rendered_table_reads_back_to_its_rows():
    assert parse(render(ROWS)) == sorted(ROWS, key=lambda r: r["kind"] != "fault")  # faults first
    assert check_table(render(ROWS)) == []


def test_the_check_refuses_hand_edits_constrained_figures_and_rows_without_figures():
    table = render(ROWS)
    # a promise rewritten by hand
    edited = table.replace("job runs again", "job surely runs again")
    assert any("not render()" in p for p in check_table(edited))
    # a figure a unique index fixes, however it got there
    constrained = render([{**ROWS[0], "duplicates": 0}])
    assert any("duplicates" in p for p in check_table(constrained))
    # a row with nothing observed, and one without a recorded time
    assert any("no figure" in p for p in check_table(render([{k: ROWS[1][k] for k in ("kind", "name", "at")}])))
    assert any("recorded time" in p for p in check_table(render([{**ROWS[1], "at": "yesterday"}])))


def test_a_partial_rerun_with_keep_replaces_its_scenarios_and_keeps_the_others(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text(f"intro\n{BEGIN}\n{render(ROWS)}\n{END}\noutro\n")
    results = tmp_path / "results.jsonl"
    rerun = {**ROWS[0], "at": "2026-11-30T02:00:00Z", "runs": 3}
    results.write_text(json.dumps(rerun) + "\n")

    assert main([str(results), str(doc), "--keep"]) == 0
    rows = {r["name"]: r for r in parse(table_of(doc.read_text()))}
    assert rows[ROWS[0]["name"]] == rerun and rows[ROWS[1]["name"]] == ROWS[1] and len(rows) == 3
    assert doc.read_text().startswith("intro\n") and doc.read_text().endswith("outro\n")

    # without --keep the table is the results alone (what `make reliability` does after a whole run)
    assert main([str(results), str(doc)]) == 0
    assert parse(table_of(doc.read_text())) == [rerun]
